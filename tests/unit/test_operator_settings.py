"""workfleet-operator refuses bad settings with one message naming each bad field, before starting."""

import pytest

from workfleet_operator.operator_cli import main


def test_bad_fields_are_named_and_nothing_starts(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--namespaces", "a", "--metrics-port", "lots", "--log-level", "LOUD"])
    assert exited.value.code == 2
    message = capsys.readouterr().err
    assert "--metrics-port / WORKFLEET_METRICS_PORT" in message and "--log-level / WORKFLEET_LOG_LEVEL" in message


@pytest.mark.parametrize("args", [[], ["--namespaces", "a", "--all-namespaces", "true"]])
def test_exactly_one_scope_is_required(capsys, args):
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    assert "give --namespaces NS[,NS...] or --all-namespaces, exactly one of them" in capsys.readouterr().err
