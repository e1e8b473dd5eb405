"""Tasks side by side in one worker (`--concurrency`, and `async def` tasks), on a real broker,
judged by the ledger and by the outcome lines' start times and durations (never by wall-clock
bounds on the run itself)."""

import signal
import time
import urllib.error
import urllib.request

import pytest

from tests.support.broker import declare, node_with_consumer_timeout, publish, wait_until
from tests.support.ledger import wait_for_ledger
from workfleet_common.logs import read_delivery_outcomes
from workfleet_common.topology import Topology

IN_FLIGHT = "workfleet_worker_messages_in_flight"
RUNNING = "workfleet_worker_tasks_running"


def intervals(worker) -> list[tuple[float, float]]:
    """(start, end) of each task the worker logged, on the wall clock."""
    return [(line["started_at"], line["started_at"] + line["duration_s"]) for line in read_delivery_outcomes(worker.log_path)]


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The largest number of spans that overlap at one moment."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans], key=lambda edge: (edge[0], edge[1]))
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def healthz(worker) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.metrics_port}/healthz", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_an_async_task_runs_to_completion_before_its_message_is_acked(broker, queue_name, workers, tmp_path):
    """Three `async def` tasks (0.2 s awaits) at the default concurrency 1: each writes its marker,
    named by current_delivery().message_id, before its ack; nothing is acked unrun."""
    topology = Topology(queue_name)
    declare(broker.amqp_url, topology)
    worker = workers(broker.amqp_url, "--queue", queue_name, "--task", "tests.support.tasks:async_marker",
                     dot_seconds=0.1, env={"WORKFLEET_TEST_STATE_DIR": str(tmp_path)})
    worker.wait_ready()
    ids, confirmed = publish(broker.amqp_url, queue_name, ["..", "..", ".."])
    ledger = wait_for_ledger(ids, confirmed, [worker])
    ledger.assert_final(broker.amqp_url, topology)
    for message_id in ids:
        assert (tmp_path / message_id).read_text() == "1", f"{message_id} was acked without its task running"
    assert all(line["duration_s"] >= 0.2 for line in read_delivery_outcomes(worker.log_path))


def test_concurrency_four_runs_four_tasks_at_once_and_never_more(broker, queue_name, workers):
    """Twelve 0.5 s tasks at --concurrency 4: four overlap in one process, never five."""
    topology = Topology(queue_name)
    declare(broker.amqp_url, topology)
    worker = workers(broker.amqp_url, "--queue", queue_name, "--concurrency", "4", dot_seconds=0.1)
    worker.wait_ready()
    ids, confirmed = publish(broker.amqp_url, queue_name, ["....."] * 12)
    ledger = wait_for_ledger(ids, confirmed, [worker])
    ledger.assert_final(broker.amqp_url, topology)
    assert most_at_once(intervals(worker)) == 4
    assert worker.metric("workfleet_worker_concurrency") == 4


def test_async_tasks_run_side_by_side_on_one_event_loop(broker, queue_name, workers, tmp_path):
    """Forty 0.5 s `async def` tasks at --concurrency 20: twenty overlap, never more."""
    topology = Topology(queue_name)
    declare(broker.amqp_url, topology)
    worker = workers(broker.amqp_url, "--queue", queue_name, "--task", "tests.support.tasks:async_marker",
                     "--concurrency", "20", dot_seconds=0.1, env={"WORKFLEET_TEST_STATE_DIR": str(tmp_path)})
    worker.wait_ready()
    ids, confirmed = publish(broker.amqp_url, queue_name, ["....."] * 40)
    ledger = wait_for_ledger(ids, confirmed, [worker])
    ledger.assert_final(broker.amqp_url, topology)
    assert most_at_once(intervals(worker)) == 20
    assert sorted(path.name for path in tmp_path.iterdir() if path.name in set(ids)) == sorted(ids)


def test_no_short_task_waits_behind_a_long_one_while_a_slot_is_free(broker, queue_name, workers):
    """Two workers at --concurrency 2 (four slots); a stream of 20 ms tasks, every fifth one 3 s.
    Judged from the outcome lines: while each short task waited (from its publish to its start),
    the time during which some slot of either worker was free is far below a long task's length.
    A short task buffered behind long ones while a slot elsewhere was free would wait seconds."""
    topology = Topology(queue_name)
    declare(broker.amqp_url, topology)
    pair = [workers(broker.amqp_url, "--queue", queue_name, "--concurrency", "2", dot_seconds=0.02) for _ in range(2)]
    for worker in pair:
        worker.wait_ready()
    published_at, ids, confirmed = {}, [], set()
    for index in range(40):
        body = "." * 150 if index % 5 == 0 else "."  # 3 s or 20 ms
        before = time.time()
        [message_id], confirmed_now = publish(broker.amqp_url, queue_name, [body])
        published_at[message_id] = before
        ids.append(message_id)
        confirmed |= confirmed_now
        time.sleep(0.05)
    ledger = wait_for_ledger(ids, confirmed, pair, timeout=120)
    ledger.assert_final(broker.amqp_url, topology)

    spans = [span for worker in pair for span in intervals(worker)]
    for worker in pair:
        assert most_at_once(intervals(worker)) <= 2
    short = [line for worker in pair for line in read_delivery_outcomes(worker.log_path) if line["duration_s"] < 1]
    assert len(short) == 32
    worst = max(time_with_a_free_slot(published_at[line["message_id"]], line["started_at"], spans, slots=4) for line in short)
    assert worst < 0.5, f"a short task waited {worst:.2f} s while a slot was free (a long task is 3 s)"


def time_with_a_free_slot(start: float, end: float, spans: list[tuple[float, float]], slots: int, step: float = 0.005) -> float:
    """Seconds within [start, end] during which fewer than `slots` spans were running."""
    free = 0.0
    moment = start
    while moment < end:
        if sum(1 for span_start, span_end in spans if span_start <= moment < span_end) < slots:
            free += step
        moment += step
    return free


@pytest.mark.parametrize("concurrency", [4, 8])
def test_sigterm_finishes_the_tasks_in_hand_and_hands_the_buffer_back(broker, queue_name, workers, concurrency):
    """--concurrency N --prefetch 2N: N 2 s tasks run and N wait in the buffer when SIGTERM
    arrives. The N finish and are acked once, the N buffered go back unrun (N "shutdown"
    requeues), the worker exits 0, and another worker completes them; nothing lost."""
    topology = Topology(queue_name)
    declare(broker.amqp_url, topology)
    first = workers(broker.amqp_url, "--queue", queue_name, "--concurrency", str(concurrency),
                    "--prefetch", str(2 * concurrency), dot_seconds=0.1)
    first.wait_ready()
    ids, confirmed = publish(broker.amqp_url, queue_name, ["." * 20] * (2 * concurrency))
    first.wait_for_metric(IN_FLIGHT, lambda value: value == 2 * concurrency)
    first.wait_for_metric(RUNNING, lambda value: value == concurrency)
    assert first.terminate() == 0

    first_lines = read_delivery_outcomes(first.log_path)
    assert [line["outcome"] for line in first_lines] == ["acked"] * concurrency
    assert first.log_path.read_text().count('"reason": "shutdown"') == concurrency
    second = workers(broker.amqp_url, "--queue", queue_name, "--concurrency", "4", dot_seconds=0.01)
    ledger = wait_for_ledger(ids, confirmed, [first, second])
    assert second.terminate() == 0
    ledger.assert_final(broker.amqp_url, topology)  # each executed once


def test_sigkill_mid_task_redelivers_all_four(broker, queue_name, workers):
    """--concurrency 4 with four 30 s tasks running: SIGKILL. Another worker completes all four."""
    topology = Topology(queue_name)
    declare(broker.amqp_url, topology)
    first = workers(broker.amqp_url, "--queue", queue_name, "--concurrency", "4", dot_seconds=1.0)
    first.wait_ready()
    ids, confirmed = publish(broker.amqp_url, queue_name, ["." * 30] * 4)
    first.wait_for_metric(RUNNING, lambda value: value == 4)
    first.kill()
    second = workers(broker.amqp_url, "--queue", queue_name, "--concurrency", "4", dot_seconds=0.01)
    ledger = wait_for_ledger(ids, confirmed, [first, second])
    assert second.terminate() == 0
    ledger.assert_final(broker.amqp_url, topology)
    assert read_delivery_outcomes(first.log_path) == []


def test_heartbeats_flow_while_every_slot_runs_long(broker, queue_name, workers):
    """Four 8 s tasks at --concurrency 4 on a connection with a 1 s heartbeat: acked at their first
    attempt, no reconnect, no redelivery."""
    topology = Topology(queue_name)
    declare(broker.amqp_url, topology)
    worker = workers(broker.amqp_url + "?heartbeat=1", "--queue", queue_name, "--concurrency", "4", dot_seconds=1.0)
    worker.wait_ready()
    ids, confirmed = publish(broker.amqp_url, queue_name, ["." * 8] * 4)
    ledger = wait_for_ledger(ids, confirmed, [worker], timeout=60)
    ledger.assert_final(broker.amqp_url, topology)
    lines = read_delivery_outcomes(worker.log_path)
    assert [(line["attempt"], line["redelivered"]) for line in lines] == [(1, False)] * 4
    assert most_at_once(intervals(worker)) == 4
    assert worker.metric("workfleet_worker_reconnects_total") == 0


@pytest.mark.parametrize("concurrency", ["1", "8"])
def test_liveness_holds_through_a_backlog_longer_than_its_limit(broker, queue_name, workers, concurrency):
    """--liveness-timeout 1 and a backlog of 2,000 quick tasks (2 ms a slot) that keeps the buffer
    full for several seconds: /healthz answers 200 at every probe until the queue is drained."""
    topology = Topology(queue_name)
    declare(broker.amqp_url, topology)
    ids, confirmed = publish(broker.amqp_url, queue_name, ["."] * 2000)
    worker = workers(broker.amqp_url, "--queue", queue_name, "--concurrency", concurrency, "--prefetch", "100",
                     "--liveness-timeout", "1", dot_seconds=0.002 * int(concurrency))
    worker.wait_ready()
    answers = []
    while worker.metric("workfleet_worker_messages_acked_total") < len(ids):
        answers.append(healthz(worker))
        time.sleep(0.1)
    assert len(answers) > 20, "the backlog must outlast the liveness limit several times"
    assert set(answers) == {200}
    wait_for_ledger(ids, confirmed, [worker]).assert_final(broker.amqp_url, topology)


@pytest.fixture(scope="module")
def consumer_timeout_broker():
    with node_with_consumer_timeout(3000) as node:
        yield node


@pytest.mark.parametrize("concurrency", ["1", "8"])
def test_a_task_hung_past_the_consumer_timeout_fails_liveness(consumer_timeout_broker, queue_name, workers, tmp_path,
                                                              concurrency):
    """A 20 s task against a 3 s consumer timeout: the broker closes the channel and takes the
    message back; /healthz turns 503 while that task still runs (Kubernetes would restart the pod),
    and 200 again once it has returned."""
    broker = consumer_timeout_broker
    topology = Topology(queue_name)
    declare(broker.amqp_url, topology)
    worker = workers(broker.amqp_url, "--queue", queue_name, "--concurrency", concurrency,
                     "--task", "tests.support.tasks:slow_first_time",
                     env={"WORKFLEET_TEST_STATE_DIR": str(tmp_path), "WORKFLEET_TEST_SLOW_SECONDS": "20"})
    worker.wait_ready()
    assert healthz(worker) == 200
    ids, confirmed = publish(broker.amqp_url, queue_name, ["hangs"])
    wait_until(lambda: healthz(worker) == 503, timeout=15, message="/healthz 503 after the consumer timeout")
    assert worker.metric("workfleet_worker_oldest_in_flight_age_seconds") >= 3
    ledger = wait_for_ledger(ids, confirmed, [worker], timeout=60)
    ledger.assert_final(broker.amqp_url, topology)
    wait_until(lambda: healthz(worker) == 200, timeout=30, message="/healthz 200 once the task returned")


def test_a_queue_declared_with_other_arguments_is_a_clear_error(broker, queue_name, workers):
    """The work queue exists as a quorum queue without the dead-letter exchange (a user's own
    script declared it). The worker exits with status 2 and says which queue, which argument, and
    how to fix it, instead of reconnecting forever."""
    import pika

    with pika.BlockingConnection(pika.URLParameters(broker.amqp_url)) as connection:
        connection.channel().queue_declare(queue_name, durable=True, arguments={"x-queue-type": "quorum"})
    worker = workers(broker.amqp_url, "--queue", queue_name)
    assert worker.process.wait(timeout=30) == 2
    text = worker.log_path.read_text()
    assert f"the queue '{queue_name}' already exists with other arguments" in text
    assert "x-dead-letter-exchange" in text
    assert f"rabbitmqctl delete_queue {queue_name}" in text and "--queue" in text


def test_a_plain_task_at_concurrency_one_still_runs_on_the_main_thread(broker, queue_name, workers):
    """The fast path stays: one task at a time, acks in batches (multiple), outcome lines as before."""
    topology = Topology(queue_name)
    declare(broker.amqp_url, topology)
    worker = workers(broker.amqp_url, "--queue", queue_name, dot_seconds=0.05)
    worker.wait_ready()
    ids, confirmed = publish(broker.amqp_url, queue_name, ["."] * 6)
    wait_for_ledger(ids, confirmed, [worker]).assert_final(broker.amqp_url, topology)
    assert most_at_once(intervals(worker)) == 1


def test_sigterm_with_async_tasks_in_hand_finishes_them(broker, queue_name, workers, tmp_path):
    """Async tasks at --concurrency 3, SIGTERM while three 2 s tasks await: all three finish,
    write their markers and are acked; exit 0."""
    topology = Topology(queue_name)
    declare(broker.amqp_url, topology)
    worker = workers(broker.amqp_url, "--queue", queue_name, "--task", "tests.support.tasks:async_marker",
                     "--concurrency", "3", dot_seconds=0.1, env={"WORKFLEET_TEST_STATE_DIR": str(tmp_path)})
    worker.wait_ready()
    ids, confirmed = publish(broker.amqp_url, queue_name, ["." * 20] * 3)
    worker.wait_for_metric(RUNNING, lambda value: value == 3)
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(timeout=30) == 0
    ledger = wait_for_ledger(ids, confirmed, [worker], timeout=5)
    ledger.assert_final(broker.amqp_url, topology)
    assert all((tmp_path / message_id).exists() for message_id in ids)
