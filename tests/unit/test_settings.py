"""Bad settings exit with status 2 and one message naming every bad field."""

import os
import subprocess
import sys

import pytest

from workfleet_worker.prefetch import PrefetchSetting
from workfleet_worker.settings import WorkerSettings


def run(module: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    process_env = {key: value for key, value in os.environ.items() if not key.startswith("WORKFLEET_")}
    process_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, env=process_env, timeout=60
    )


def test_worker_reports_every_bad_flag_and_variable():
    result = run(
        "workfleet_worker",
        "--prefetch", "0", "--task", "no_such_module:run", "--queue-type", "fast",
        env={"WORKFLEET_MAX_ATTEMPTS": "many", "WORKFLEET_AMQP_URL": "http://user:secret@host/"},
    )
    assert result.returncode == 2
    for name in ("--prefetch", "--task", "--queue-type", "WORKFLEET_MAX_ATTEMPTS", "WORKFLEET_AMQP_URL"):
        assert name in result.stderr
    assert "secret" not in result.stderr, "a password must not be echoed"
    assert "Traceback" not in result.stderr


def test_producer_reports_every_bad_setting():
    result = run("workfleet_producer", "hello", "--window", "0", env={"WORKFLEET_CONFIRM_TIMEOUT": "-1"})
    assert result.returncode == 2
    assert "--window" in result.stderr and "WORKFLEET_CONFIRM_TIMEOUT" in result.stderr


def test_producer_refuses_oversized_input_before_connecting():
    # The URL points nowhere: the size check must fail first, with nothing sent.
    result = run("workfleet_producer", "--max-message-bytes", "4", "--amqp-url", "amqp://127.0.0.1:1/", "ok", "too long")
    assert result.returncode == 2
    assert "over the 4-byte limit" in result.stderr and "nothing was sent" in result.stderr


def test_flags_win_over_environment(monkeypatch):
    monkeypatch.setenv("WORKFLEET_QUEUE", "from-env")
    monkeypatch.setenv("WORKFLEET_PREFETCH", "7")
    settings = WorkerSettings(queue="from-flag")
    assert (settings.queue, settings.prefetch) == ("from-flag", 7)


def test_defaults_follow_the_tutorial():
    settings = WorkerSettings()
    assert (settings.queue, settings.task) == ("tasks", "workfleet_worker.tasks:dots")
    # auto starts at the tutorial's prefetch 1 and keeps it for tasks over 50 ms.
    assert settings.prefetch_setting() == PrefetchSetting(fixed=None, budget_s=0.05, cap=50)
    assert settings.prefetch_setting().initial == 1


@pytest.mark.parametrize("value, fixed", [("auto", None), ("1", 1), ("20", 20), (" 5 ", 5)])
def test_prefetch_is_auto_or_a_count(value, fixed):
    assert WorkerSettings(prefetch=value).prefetch_setting().fixed == fixed


@pytest.mark.parametrize("value", ["0", "1001", "lots", "-3", "", "2.5"])
def test_bad_prefetch_names_both_forms(value):
    result = run("workfleet_worker", "--prefetch", value)
    assert result.returncode == 2
    assert "--prefetch / WORKFLEET_PREFETCH: expected a number from 1 to 1000, or auto" in result.stderr


@pytest.mark.parametrize("queue", ["", "amq.reserved"])
def test_unusable_queue_names_are_refused(queue):
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        WorkerSettings(queue=queue)


def test_retry_delays_default_to_the_ladder_and_bad_ones_name_the_delay():
    assert WorkerSettings().retry_ladder().delays_ms == (1000, 10_000, 60_000, 600_000, 3_600_000)
    assert WorkerSettings(retry_delays="0").retry_ladder().delays_ms == (0,)
    result = run("workfleet_worker", "--retry-delays", "1s,ten", "--max-attempts", "0")
    assert result.returncode == 2
    assert "--retry-delays / WORKFLEET_RETRY_DELAYS: 'ten' is not a delay" in result.stderr
    assert "--max-attempts / WORKFLEET_MAX_ATTEMPTS" in result.stderr


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    from tests.support.certificates import write_ca, write_client_certificate

    pki = write_ca(tmp_path_factory.mktemp("tls"))
    cert, key = write_client_certificate(pki, "client", "workfleet-worker")
    garbage = pki["ca_cert"].parent / "garbage.pem"
    garbage.write_text("not a certificate\n")
    return {"ca": str(pki["ca_cert"]), "cert": str(cert), "key": str(key), "other_key": str(pki["ca_key"]),
            "garbage": str(garbage)}


@pytest.mark.parametrize("module", ["workfleet_worker", "workfleet_producer"])
def test_tls_files_are_checked_at_start_naming_each_bad_one(module, tls_files):
    message = ["x"] if module == "workfleet_producer" else []
    result = run(module, "--amqp-url", "amqps://u:p@broker:5671/%2F", "--amqp-ca-file", tls_files["garbage"],
                 "--amqp-cert-file", tls_files["cert"], "--amqp-key-file", tls_files["other_key"], *message)
    assert result.returncode == 2
    assert "--amqp-ca-file / WORKFLEET_AMQP_CA_FILE: not a PEM CA certificate" in result.stderr, result.stderr
    assert "--amqp-key-file / WORKFLEET_AMQP_KEY_FILE: the certificate and key do not load as a pair" in result.stderr

    result = run(module, "--amqp-url", "amqps://u:p@broker:5671/%2F", "--amqp-ca-file", "/no/such/ca.crt",
                 "--amqp-cert-file", tls_files["cert"], *message)
    assert "--amqp-ca-file / WORKFLEET_AMQP_CA_FILE: no such file" in result.stderr, result.stderr
    assert "--amqp-key-file / WORKFLEET_AMQP_KEY_FILE: give the client certificate and its key together" in result.stderr


def test_tls_files_with_a_plain_url_are_refused(tls_files):
    result = run("workfleet_worker", "--amqp-url", "amqp://u:p@broker/%2F", "--amqp-ca-file", tls_files["ca"])
    assert result.returncode == 2
    assert "--amqp-ca-file / WORKFLEET_AMQP_CA_FILE: TLS files need an amqps:// URL" in result.stderr, result.stderr
