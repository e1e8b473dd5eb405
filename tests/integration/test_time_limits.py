"""Task time limits (issue 12): the soft limit raises TaskTimeout inside the task, a failed attempt
retried on the ladder; a task the soft limit cannot reach is ended by the hard limit, which ends
the worker, and the broker redelivers its message. Judged by outcome lines, metrics, exit status."""

from tests.support.broker import declare, publish
from tests.support.ledger import wait_for_ledger
from workfleet_common.logs import read_delivery_outcomes
from workfleet_common.topology import Topology

TEN_SECONDS = "." * 100  # with dot_seconds 0.1


def test_a_sleeping_task_is_stopped_at_its_soft_limit_and_retried(broker, queue_name, workers):
    topology = Topology(queue_name)
    declare(broker.amqp_url, topology)
    worker = workers(broker.amqp_url, "--queue", queue_name, "--task-timeout", "1", "--max-attempts", "2",
                     dot_seconds=0.1)
    worker.wait_ready()
    ids, confirmed = publish(broker.amqp_url, queue_name, [TEN_SECONDS, "."])
    ledger = wait_for_ledger(ids, confirmed, [worker], timeout=60)
    ledger.assert_final(broker.amqp_url, topology, dead_lettered={ids[0]}, max_executions=2)

    lines = [line for line in read_delivery_outcomes(worker.log_path) if line["message_id"] == ids[0]]
    assert [line["outcome"] for line in lines] == ["retried", "dead_lettered"]
    for line in lines:
        assert line["error"].startswith("TaskTimeout: the task ran longer than its 1 s time limit")
        assert line["duration_s"] < 10, "stopped well before its sleep ended"
    assert worker.metric("workfleet_worker_task_timeouts_total") == 2


def test_a_task_the_soft_limit_cannot_reach_is_ended_by_the_hard_limit(broker, queue_name, workers):
    """The task blocks SIGALRM and sleeps 30 s. At 1 s + 1 s grace the worker writes a `timeout`
    outcome line and exits with status 3; a second worker runs the redelivered message, once."""
    topology = Topology(queue_name)
    declare(broker.amqp_url, topology)
    options = ("--queue", queue_name, "--task", "tests.support.tasks:blocks_time_limit_first_time",
               "--task-timeout", "1", "--task-timeout-grace", "1")
    stuck = workers(broker.amqp_url, *options)
    stuck.wait_ready()
    ids, confirmed = publish(broker.amqp_url, queue_name, ["stuck"])
    assert stuck.process.wait(timeout=20) == 3

    [line] = read_delivery_outcomes(stuck.log_path)
    assert (line["message_id"], line["outcome"], line["attempt"]) == (ids[0], "timeout", 1)
    assert 2 <= line["duration_s"] < 30

    other = workers(broker.amqp_url, *options)
    ledger = wait_for_ledger(ids, confirmed, [stuck, other], timeout=60)
    ledger.assert_final(broker.amqp_url, topology, max_executions=2)
    assert [line["outcome"] for line in read_delivery_outcomes(other.log_path)] == ["acked"]


def test_in_a_pool_thread_a_python_loop_gets_task_timeout_at_its_soft_limit(broker, queue_name, workers):
    """--concurrency 2: a task spinning in Python code is stopped at its 1 s soft limit (TaskTimeout
    raised in its thread), retried, then dead-lettered; the other slot goes on running tasks."""
    topology = Topology(queue_name)
    declare(broker.amqp_url, topology)
    worker = workers(broker.amqp_url, "--queue", queue_name, "--concurrency", "2", "--task-timeout", "1",
                     "--max-attempts", "2", "--task", "tests.support.tasks:spins_or_sleeps_first_time",
                     dot_seconds=0.1)
    worker.wait_ready()
    ids, confirmed = publish(broker.amqp_url, queue_name, ["spin", ".", "."])
    ledger = wait_for_ledger(ids, confirmed, [worker], timeout=60)
    ledger.assert_final(broker.amqp_url, topology, dead_lettered={ids[0]}, max_executions=2)
    lines = [line for line in read_delivery_outcomes(worker.log_path) if line["message_id"] == ids[0]]
    assert [line["outcome"] for line in lines] == ["retried", "dead_lettered"]
    for line in lines:
        assert line["error"].startswith("TaskTimeout: the task ran longer than its 1 s time limit")
        assert line["duration_s"] < 5
    assert worker.process.poll() is None


def test_an_async_task_is_cancelled_at_its_soft_limit(broker, queue_name, workers, tmp_path):
    """An `async def` task awaiting 10 s with --task-timeout 1 is cancelled at 1 s: TaskTimeout,
    retried, then dead-lettered; its marker (written after the await) never appears."""
    topology = Topology(queue_name)
    declare(broker.amqp_url, topology)
    worker = workers(broker.amqp_url, "--queue", queue_name, "--task", "tests.support.tasks:async_marker",
                     "--task-timeout", "1", "--max-attempts", "2", dot_seconds=0.1,
                     env={"WORKFLEET_TEST_STATE_DIR": str(tmp_path)})
    worker.wait_ready()
    ids, confirmed = publish(broker.amqp_url, queue_name, [TEN_SECONDS])
    ledger = wait_for_ledger(ids, confirmed, [worker], timeout=60)
    ledger.assert_final(broker.amqp_url, topology, dead_lettered={ids[0]}, max_executions=2)
    lines = read_delivery_outcomes(worker.log_path)
    assert [line["outcome"] for line in lines] == ["retried", "dead_lettered"]
    assert all(line["error"].startswith("TaskTimeout") and line["duration_s"] < 5 for line in lines)
    assert not (tmp_path / ids[0]).exists()


def test_at_concurrency_four_the_hard_limit_ends_the_worker_and_the_others_are_redelivered(broker, queue_name, workers):
    """--concurrency 4: one task sleeps 30 s in one C call, which nothing raised in its thread can
    interrupt; three 10 s tasks start beside it a moment later. At 1 s + 1 s grace the worker writes
    a `timeout` line for the stuck one and exits 3; the broker redelivers all four, and a second
    worker completes them."""
    topology = Topology(queue_name)
    declare(broker.amqp_url, topology)
    options = ("--queue", queue_name, "--concurrency", "4", "--task", "tests.support.tasks:spins_or_sleeps_first_time")
    stuck = workers(broker.amqp_url, *options, "--task-timeout", "1", "--task-timeout-grace", "1", dot_seconds=0.1)
    stuck.wait_ready()
    ids, confirmed = publish(broker.amqp_url, queue_name, ["stuck"])
    stuck.wait_for_metric("workfleet_worker_tasks_running", lambda value: value == 1)
    more_ids, more_confirmed = publish(broker.amqp_url, queue_name, [TEN_SECONDS] * 3)
    ids, confirmed = ids + more_ids, confirmed | more_confirmed
    assert stuck.process.wait(timeout=30) == 3
    lines = read_delivery_outcomes(stuck.log_path)
    assert [(line["message_id"], line["outcome"]) for line in lines] == [(ids[0], "timeout")]

    other = workers(broker.amqp_url, *options, dot_seconds=0.01)
    ledger = wait_for_ledger(ids, confirmed, [stuck, other], timeout=60)
    ledger.assert_final(broker.amqp_url, topology, max_executions=2)
    assert sorted(line["message_id"] for line in read_delivery_outcomes(other.log_path)) == sorted(ids)
