import threading

from workfleet_worker.runner import Job, TaskRunner


def test_tasks_run_in_order_off_the_calling_thread():
    seen, done = [], threading.Event()
    caller = threading.get_ident()

    def task(body, headers):
        seen.append((body, threading.get_ident() != caller))
        if body == "boom":
            raise SystemExit("a task must not kill the runner")

    results = []

    def on_done(result):
        results.append(result)
        if len(results) == 3:
            done.set()

    runner = TaskRunner(task)
    for body in ("a", "boom", "c"):
        runner.submit(Job(None, body, {}, on_done))
    assert done.wait(10)
    assert seen == [("a", True), ("boom", True), ("c", True)]
    assert [type(result.error) for result in results] == [type(None), SystemExit, type(None)]
