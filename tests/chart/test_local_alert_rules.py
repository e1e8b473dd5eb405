"""`workfleet up --prometheus` loads the chart's alert rules from a file shipped in the package,
rendered from the chart by scripts/local_alert_rules.py. (tests/integration/test_up.py runs them
on the local fleet.)"""

import subprocess
import sys

import yaml

from tests.chart.test_alert_rules import alert_names, promtool, rendered_rules
from tests.chart.test_render import ROOT
from workfleet_operator.local.prometheus import alert_rules


def test_shipped_rules_are_what_the_chart_renders():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "local_alert_rules.py"), "--check"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_rules_select_the_fleets_queue_however_it_is_spelled(tmp_path):
    queue = 'jobs "eu"\\ü'
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(alert_rules(queue))
    checked = promtool("check", "rules", str(rules_file))
    assert checked.returncode == 0, checked.stdout + checked.stderr

    rules = yaml.safe_load(rules_file.read_text())
    assert alert_names(rules) == alert_names(rendered_rules())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert "__queue__" not in rules_file.read_text()
    dead_lettering = next(expr for expr in exprs if "messages_dead_lettered" in expr)
    assert 'queue="jobs \\"eu\\"\\\\\\u00fc"' in dead_lettering, dead_lettering
