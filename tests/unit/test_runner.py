from workfleet_worker.runner import run_task


def test_a_task_that_returns_reports_no_error():
    seen = []
    result = run_task(lambda body, headers: seen.append((body, headers)), "a", {"k": 1})
    assert seen == [("a", {"k": 1})]
    assert result.error is None
    assert result.duration_s >= 0


def test_whatever_a_task_raises_is_reported_not_raised():
    def task(body, headers):
        raise SystemExit("a task must not end the worker")

    result = run_task(task, "boom", {})
    assert isinstance(result.error, SystemExit)


def test_a_task_past_its_soft_limit_gets_task_timeout_raised_inside_it():
    import time

    from workfleet_worker import TaskTimeout

    steps = []

    def task(body, headers):
        try:
            time.sleep(30)
            steps.append("slept")
        finally:
            steps.append("cleaned up")

    result = run_task(task, "slow", {}, soft_limit_s=0.2)
    assert isinstance(result.error, TaskTimeout)
    assert steps == ["cleaned up"], "the sleep was interrupted and the task's finally ran"


def test_the_soft_limit_is_cleared_after_a_task_that_finished_in_time():
    import signal
    import time

    assert run_task(lambda body, headers: None, "quick", {}, soft_limit_s=0.2).error is None
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    time.sleep(0.3)  # no TaskTimeout arrives later, outside any task


def test_in_a_thread_a_python_loop_gets_task_timeout_and_nothing_arrives_after_the_task():
    import threading
    import time

    from workfleet_worker import TaskTimeout
    from workfleet_worker.runner import run_task_in_thread

    results = {}

    def spin(body, headers):
        while True:
            pass

    def in_thread():
        results["spin"] = run_task_in_thread(spin, "x", {}, soft_limit_s=0.2)
        results["quick"] = run_task_in_thread(lambda body, headers: None, "x", {}, soft_limit_s=0.2)
        time.sleep(0.4)  # a timer left behind would raise TaskTimeout here, outside any task
        results["after"] = "no stray TaskTimeout"

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(10)
    assert isinstance(results["spin"].error, TaskTimeout)
    assert str(results["spin"].error) == "the task ran longer than its 0.2 s time limit"
    assert results["quick"].error is None
    assert results["after"] == "no stray TaskTimeout"


def test_an_async_task_is_awaited_and_cancelled_at_its_soft_limit():
    import asyncio

    from workfleet_worker import TaskTimeout
    from workfleet_worker.runner import run_async_task

    steps = []

    async def task(body, headers):
        try:
            await asyncio.sleep(body)
            steps.append("slept")
        except asyncio.CancelledError:
            steps.append("cancelled")
            raise

    assert asyncio.run(run_async_task(task, 0.01, {}, soft_limit_s=1)).error is None
    result = asyncio.run(run_async_task(task, 30, {}, soft_limit_s=0.1))
    assert isinstance(result.error, TaskTimeout) and result.duration_s < 5
    assert steps == ["slept", "cancelled"]


def test_an_async_task_s_own_timeout_error_is_its_error_not_a_time_limit():
    import asyncio

    from workfleet_worker.runner import run_async_task

    async def task(body, headers):
        raise TimeoutError("the API did not answer")

    result = asyncio.run(run_async_task(task, None, {}, soft_limit_s=10))
    assert type(result.error) is TimeoutError


def test_a_plain_task_that_returns_a_coroutine_fails_instead_of_being_acked_unrun():
    from workfleet_worker.runner import CoroutineFromPlainTask

    async def work(body, headers):
        raise AssertionError("never awaited, so never run")

    result = run_task(lambda body, headers: work(body, headers), "x", {})
    assert isinstance(result.error, CoroutineFromPlainTask)
    assert "async def" in str(result.error)


def test_the_task_reads_its_own_delivery_and_nothing_outside_one():
    import asyncio

    import pytest

    from workfleet_worker import DeliveryContext, current_delivery
    from workfleet_worker.runner import run_async_task, run_task_in_thread

    seen = []

    def plain(body, headers):
        seen.append(current_delivery().message_id)

    async def asynchronous(body, headers):
        await asyncio.sleep(0)
        seen.append(current_delivery().message_id)

    def context(name: str) -> DeliveryContext:
        return DeliveryContext(message_id=name, attempt=1, redelivered=False, headers={})

    run_task(plain, "x", {}, context=context("main"))
    run_task_in_thread(plain, "x", {}, context=context("thread"))

    async def two_at_once():
        await asyncio.gather(run_async_task(asynchronous, "x", {}, context=context("a")),
                             run_async_task(asynchronous, "x", {}, context=context("b")))

    asyncio.run(two_at_once())
    assert seen == ["main", "thread", "a", "b"]
    with pytest.raises(RuntimeError, match="only inside a task"):
        current_delivery()
    assert context("x").time_left() is None
