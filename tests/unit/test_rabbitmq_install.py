"""Choosing the RabbitMQ a private node runs: a bad or missing choice fails with what to do."""

import pytest

from workfleet_operator.local.rabbitmq_install import RabbitMQInstallError, rabbitmq_install


def test_an_unknown_choice_names_the_known_ones(monkeypatch):
    monkeypatch.setenv("WORKFLEET_RABBITMQ", "3.12")
    with pytest.raises(RabbitMQInstallError, match=r"WORKFLEET_RABBITMQ='3.12': choose one of 4, host"):
        rabbitmq_install()


def test_a_missing_rabbitmq_4_tree_says_how_to_get_one(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKFLEET_RABBITMQ_ROOTFS", str(tmp_path))
    with pytest.raises(RabbitMQInstallError, match="make setup") as raised:
        rabbitmq_install("4")
    assert str(tmp_path) in str(raised.value) and "WORKFLEET_RABBITMQ=host" in str(raised.value)


def test_the_host_install_runs_the_package_programs_directly():
    install = rabbitmq_install("host")
    assert install.command("rabbitmqctl", "/tmp/node", "status") == ["/usr/lib/rabbitmq/bin/rabbitmqctl", "status"]
    assert install.version().startswith("3.")


def test_the_rabbitmq_4_install_enters_its_tree_as_its_own_rabbitmq_user():
    install = rabbitmq_install("4")
    command = install.command("rabbitmq-server", "/tmp/node")
    assert command[:2] == ["unshare", "--mount"] and command[-1] == "/usr/lib/rabbitmq/bin/rabbitmq-server"
    uid, gid = install.service_ids()
    assert f"{uid}:{gid}" in command and str(install.rootfs) in command
    assert install.version().startswith("4.")
