"""The run tests the broker it was asked for: a RabbitMQ 4 run that silently got the host's 3.10
(or the reverse) would pass for coverage it does not give."""

import subprocess

def host_package_version() -> str:
    """The upstream part of the installed Debian package's version: 3.10.8 from 3.10.8-1.1."""
    shown = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    return shown.stdout.split("-")[0]


def test_the_node_runs_the_requested_rabbitmq(broker, request):
    running = broker.management_get("/api/overview")["rabbitmq_version"]
    if request.config.getoption("--rabbitmq") == "4":
        assert running.split(".")[0] == "4", f"asked for RabbitMQ 4, the node runs {running}"
    else:
        assert running == host_package_version(), f"asked for the host's package, the node runs {running}"
