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
