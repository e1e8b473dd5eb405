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
