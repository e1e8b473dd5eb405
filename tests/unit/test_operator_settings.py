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


@pytest.mark.parametrize("selector", ["app", "a=b,", "=b", "a b=c"])
def test_a_pool_selector_that_is_not_key_value_pairs_is_refused(capsys, selector):
    with pytest.raises(SystemExit) as exited:
        main(["--namespaces", "a", "--pool-selector", selector])
    assert exited.value.code == 2
    assert "--pool-selector / WORKFLEET_POOL_SELECTOR" in capsys.readouterr().err


def test_a_pool_selector_gives_the_labels_a_pool_must_carry():
    from workfleet_operator.handlers import selected
    from workfleet_operator.settings import OperatorSettings

    labels = OperatorSettings(namespaces="a", pool_selector="app.kubernetes.io/instance=wf,tier=").pool_labels
    assert labels == {"app.kubernetes.io/instance": "wf", "tier": ""}
    assert selected({"app.kubernetes.io/instance": "wf", "tier": "", "x": "y"}, labels)
    assert not selected({"app.kubernetes.io/instance": "wf"}, labels)
    assert not selected({"app.kubernetes.io/instance": "other", "tier": ""}, labels)
    assert selected({}, {})
