"""The Grafana dashboard and the alert rules query only metrics (and labels) that the services export.

Every PromQL expression in deploy/grafana/dashboards/*.json, deploy/prometheus/alerts.yml and the series of
alerts_test*.yml is parsed for its metric names and label matchers; each service's metrics class is built on a
fresh CollectorRegistry, and whatever that registry would expose (counters as ``_total``, histograms as
``_bucket``/``_sum``/``_count``) is the list the names must be in. The dashboard's PromQL is also checked for
syntax by promtool, through a throw-away rules file.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
SERVICES = ("ingress", "poller", "projector")
# Series Prometheus itself makes for every target, and the labels it adds to every series it scrapes.
TARGET_LABELS = {"job", "instance"}
PROMETHEUS_SERIES = {"up": TARGET_LABELS}
PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2", "group_left", "group_right"}
CLAUSES = r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"
GRAFANA_INTERVALS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "6h"}


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric name, label names matched on it) for every vector selector in a PromQL expression."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # string literals
    text = re.sub(r"\$\{?\w+\}?", "", text)  # Grafana variables
    text = re.sub(r"\[[^\]]*\]", "", text)  # range and subquery brackets
    text = re.sub(CLAUSES, " ", text)  # grouping labels are not metrics
    found = []
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?(\s*\()?", text):
        name, matchers, call = match.groups()
        if call or name in PROMQL_WORDS:
            continue  # a function or aggregation, or an operator
        labels = set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", matchers or ""))
        found.append((name, labels))
    for match in re.finditer(r"(?<![\w}])\{([^}]*)\}", text):  # {__name__="x"} style, no metric in front
        names = re.findall(r'__name__\s*=\s*""', match.group(1))
        assert not names, f"selectors by __name__ cannot be checked: {expr}"
    return found


def exported() -> dict[str, set[str]]:
    """Every sample name the services' registries expose, with the label names each one carries."""
    names: dict[str, set[str]] = {name: set(labels) for name, labels in PROMETHEUS_SERIES.items()}
    for service in SERVICES:
        module_path = ROOT / "services" / service / "metrics.py"
        assert module_path.exists(), f"services/{service}/metrics.py is missing: its metrics cannot be checked"
        module = importlib.import_module(f"services.{service}.metrics")
        classes = [
            obj for obj in vars(module).values()
            if inspect.isclass(obj) and obj.__module__ == module.__name__
            and "registry" in inspect.signature(obj.__init__).parameters
        ]
        assert classes, f"services/{service}/metrics.py has no metrics class taking a registry"
        for cls in classes:
            registry = CollectorRegistry()
            cls(registry)
            for name, collector in registry._names_to_collectors.items():
                labels = set(getattr(collector, "_labelnames", ()))
                if name.endswith("_bucket"):
                    labels.add("le")
                names[name] = labels | TARGET_LABELS
    return names


def dashboard_exprs(path: Path) -> list[str]:
    def walk(panels: list[dict[str, Any]]) -> list[str]:
        exprs = []
        for panel in panels:
            exprs += [t["expr"] for t in panel.get("targets", []) if t.get("expr")]
            exprs += walk(panel.get("panels", []))
        return exprs
    return walk(json.loads(path.read_text())["panels"])


def rule_exprs() -> list[str]:
    groups = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def test_selectors_finds_metrics_and_labels_and_ignores_the_rest() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, destination) (rate(ingress_publish_latency_seconds_bucket'
        '[$__rate_interval]))) / on() group_left sum(rate(x_total{outcome=~"a|b", kind!="c"}[5m] offset 1h))'
        ' > 15 * 60 and time() - max(poller_leader) > 1e3'
    )
    assert selectors(expr) == [
        ("ingress_publish_latency_seconds_bucket", set()),
        ("x_total", {"outcome", "kind"}),
        ("poller_leader", set()),
    ]
    assert selectors('absent(up{job="poller"})') == [("up", {"job"})]


def test_exported_names_follow_the_exposition_format() -> None:
    names = exported()
    assert "ingress_requests_total" in names and "outcome" in names["ingress_requests_total"]
    assert {"projector_freshness_seconds_bucket", "projector_freshness_seconds_count"} <= set(names)
    assert "le" in names["projector_freshness_seconds_bucket"]


@pytest.mark.parametrize(
    "source",
    [*(pytest.param(p, id=p.name) for p in DASHBOARDS), pytest.param("alerts.yml", id="alerts.yml")],
)
def test_every_queried_metric_and_label_is_exported(source: Path | str) -> None:
    names = exported()
    exprs = rule_exprs() if source == "alerts.yml" else dashboard_exprs(source)  # type: ignore[arg-type]
    assert exprs, f"{source}: no expressions found"
    problems = []
    for expr in exprs:
        for metric, labels in selectors(expr):
            if metric not in names:
                problems.append(f"{metric}: no service exports it (in: {expr})")
            elif labels - names[metric]:
                problems.append(f"{metric}: no label {sorted(labels - names[metric])} (in: {expr})")
    assert not problems, "\n".join(problems)


def test_the_alert_tests_feed_series_that_exist() -> None:
    names = exported()
    tests = [
        case for path in sorted((DEPLOY / "prometheus").glob("alerts_test*.yml"))
        for case in yaml.safe_load(path.read_text())["tests"]
    ]
    assert len(tests) > 10
    for case in tests:
        for series in case["input_series"]:
            for metric, labels in selectors(series["series"]):
                assert metric in names, f"alerts_test.yml feeds {metric}, which no service exports"
                assert labels <= names[metric], f"alerts_test.yml: {metric} has no label {labels - names[metric]}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_promql_parses(path: Path, tmp_path: Path) -> None:
    """promtool parses each dashboard query as a recording rule (Grafana's interval variables substituted)."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: run bash deploy/check.sh (installs Debian's prometheus package)"
    rules = []
    for index, expr in enumerate(dashboard_exprs(path)):
        for variable, value in GRAFANA_INTERVALS.items():
            expr = expr.replace(variable, value)
        rules.append({"record": f"dashboard:query_{index}", "expr": expr})
    (tmp_path / "dashboard_rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(tmp_path / "dashboard_rules.yml")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_provisionable_and_laid_out(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["version"], int)
    assert dashboard.get("id") is None, "a provisioned dashboard must not carry a database id"
    datasource = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    uid = datasource["datasources"][0]["uid"]
    ids, cells = set(), set()
    for panel in dashboard["panels"]:
        assert panel["id"] not in ids, f"duplicate panel id {panel['id']}"
        ids.add(panel["id"])
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, f"panel {panel['title']!r} is wider than the grid"
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"panel {panel['title']!r} overlaps another"
                cells.add((x, y))
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == uid, f"{panel['title']!r} uses another data source"
            assert panel.get("description"), f"{panel['title']!r} has no description for the on-call reader"
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == uid


def test_the_dashboard_shows_what_on_call_needs() -> None:
    exprs = " ".join(dashboard_exprs(DEPLOY / "grafana" / "dashboards" / "trio-jobsync.json"))
    needed = {
        "webhook intake by outcome": r"sum by \(outcome\) \(rate\(ingress_requests_total",
        "publish latency": r"ingress_publish_latency_seconds_bucket",
        "consumer lag": r"projector_consumer_lag_messages",
        "apply rate by outcome": r"sum by \(outcome\) \(rate\(projector_events_total",
        "freshness p50": r"histogram_quantile\(0\.5, sum by \(le\) \(rate\(projector_freshness_seconds_bucket",
        "freshness p99": r"histogram_quantile\(0\.99, sum by \(le\) \(rate\(projector_freshness_seconds_bucket",
        "jobs by status": r"by \(status\) \(projector_view_jobs",
        "last full sync": r'poller_last_success_timestamp_seconds\{kind=~"full\|resync"\}',
        "last incremental sync": r'poller_last_success_timestamp_seconds\{kind="incremental"\}',
        "webhook registration health": r"poller_webhook_registration_healthy",
        "DLQ size": r"ingress_dlq_total.*poller_dead_letters_total.*projector_events_total\{outcome=\"dlq\"\}",
        "closure-guard trips": r"projector_closure_guard_trips_total",
    }
    missing = [what for what, pattern in needed.items() if not re.search(pattern, exprs)]
    assert not missing, f"the dashboard lacks: {missing}"


def test_the_alerts_cover_what_the_issue_asks_for() -> None:
    groups = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
    rules = {rule["alert"]: rule for group in groups for rule in group["rules"]}
    needed = {
        "JobsyncIncrementalSyncStale": 'poller_last_success_timestamp_seconds{kind="incremental"}',
        "JobsyncFullSyncStale": "26 * 3600",
        "JobsyncWebhookRegistrationUnhealthy": "poller_webhook_registration_healthy",
        "JobsyncConsumerLagGrowing": "projector_consumer_lag_messages",
        "JobsyncDeadLetters": "ingress_dlq_total",
        "JobsyncClosureGuardTripped": "projector_closure_guard_trips_total",
        "JobsyncIngress5xxRatio": "ingress_requests_total",
    }
    for alert, fragment in needed.items():
        assert alert in rules and fragment in rules[alert]["expr"], f"{alert} is missing or does not use {fragment}"
    runbook = (DEPLOY / "RUNBOOK.md").read_text().lower()
    for alert, rule in rules.items():
        anchor = rule["annotations"]["runbook"].split("#", 1)[1]
        assert anchor == alert.lower(), f"{alert}: runbook anchor {anchor}"
        assert f"## {alert.lower()}" in runbook, f"deploy/RUNBOOK.md has no section for {alert}"
        assert rule["labels"]["severity"] in {"page", "ticket"}
