"""deploy/prometheus/ with promtool (Debian's prometheus package; deploy/check.sh installs it when missing).

`check config` parses the scrape configuration and the rule files it loads, `check rules` the alert rules,
and `test rules` runs alerts_test*.yml: each alert fires on the failure it is for and stays quiet otherwise.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULE_TESTS = ("alerts_test.yml", "alerts_test_daily.yml")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: run bash deploy/check.sh (installs Debian's prometheus package)"
    return subprocess.run([binary, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120)


def test_promtool_accepts_the_scrape_config_and_its_rule_files() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout + result.stderr


def test_promtool_accepts_the_alert_rules() -> None:
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_unit_tests_pass() -> None:
    result = promtool("test", "rules", *RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_TESTS)


def test_promtool_test_rules_can_fail(tmp_path: Path) -> None:
    """The unit tests are not vacuous: with the incremental-sync threshold doubled, they fail."""
    rules = (PROMETHEUS / "alerts.yml").read_text()
    assert "> 15 * 60" in rules
    (tmp_path / "alerts.yml").write_text(rules.replace("> 15 * 60", "> 30 * 60"))
    for name in RULE_TESTS:
        shutil.copy(PROMETHEUS / name, tmp_path / name)
    binary = shutil.which("promtool")
    assert binary
    result = subprocess.run([binary, "test", "rules", "alerts_test.yml"], cwd=tmp_path, capture_output=True, text=True)
    # (only the file with the incremental cases: the mutation does not concern the daily ones)
    assert result.returncode != 0 and "JobsyncIncrementalSyncStale" in result.stdout + result.stderr
