"""Offline checks of the monitoring as code (k8s/components/monitoring): the Grafana
dashboard's JSON and the PrometheusRule's alerts.

Every metric an expression names must be one photogram_common/metrics.py defines (with
the suffixes its type exposes), or one of the few Prometheus and kube-state-metrics series
named below; every label an expression groups by must be one of those metrics' labels or
a label the scrape adds. Each alert's runbook link must land on a heading of
docs/operations.md. promtool (from $PHOTOGRAM_PROMTOOL or PATH; scripts/validate-deploy.sh
fetches it) checks the rules and parses every dashboard query; without it those two tests
are skipped, unless PHOTOGRAM_REQUIRE_DEPLOY_TOOLS=1.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import Counter, Gauge, Histogram

from photogram_common import metrics

from .deploy_files import ROOT

MONITORING = ROOT / "k8s" / "components" / "monitoring"
DASHBOARD = MONITORING / "dashboards" / "photogram.json"
RULES = MONITORING / "prometheusrule.yaml"
OPERATIONS = ROOT / "docs" / "operations.md"

# Series not defined in metrics.py that the expressions may read, with their labels.
EXTERNAL_SERIES = {
    "up": set(),  # Prometheus, per target
    "kube_deployment_status_replicas_unavailable": {"deployment"},  # kube-state-metrics
}
# Labels every scraped sample gets from its target (the ServiceMonitor), and `le`.
TARGET_LABELS = {"namespace", "job", "pod", "instance", "container", "endpoint", "le"}
# The dashboard's variables, as Grafana would put them into a query.
VARIABLES = {
    "$__rate_interval": "5m",
    "$namespace": "photogram",
    "$service": ".*",
}
PROMQL_WORDS = {
    "sum",
    "max",
    "min",
    "avg",
    "count",
    "rate",
    "increase",
    "irate",
    "histogram_quantile",
    "by",
    "without",
    "and",
    "or",
    "unless",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "absent",
    "offset",
}


@cache
def defined_series() -> dict[str, set[str]]:
    """Each series name metrics.py's metrics expose, with its labels."""
    series: dict[str, set[str]] = {}
    for value in vars(metrics).values():
        if not isinstance(value, Counter | Gauge | Histogram):
            continue
        name = value._name
        labels = set(value._labelnames)
        if isinstance(value, Counter):
            series[f"{name}_total"] = labels
        elif isinstance(value, Gauge):
            series[name] = labels
        else:
            for suffix in ("_bucket", "_sum", "_count"):
                series[name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return series


def known_series() -> dict[str, set[str]]:
    return {**defined_series(), **EXTERNAL_SERIES}


def strip_strings(expr: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)


def series_in(expr: str) -> set[str]:
    """The metric names an expression reads: identifiers not inside braces, strings,
    grouping clauses or durations, that are no PromQL function or keyword."""
    text = strip_strings(expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    names = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", text))
    return {n for n in names if n not in PROMQL_WORDS and not re.fullmatch(r"\d+\w*", n)}


def grouping_labels(expr: str) -> set[str]:
    labels: set[str] = set()
    for group in re.findall(r"\b(?:by|on)\s*\(([^)]*)\)", strip_strings(expr)):
        labels |= {label.strip() for label in group.split(",") if label.strip()}
    return labels


def check_expression(expr: str) -> list[str]:
    problems = []
    known = known_series()
    names = series_in(expr)
    if not names:
        problems.append(f"reads no metric: {expr}")
    unknown = sorted(n for n in names if n not in known)
    if unknown:
        problems.append(f"unknown metrics {unknown} (not in photogram_common/metrics.py): {expr}")
    allowed = set(TARGET_LABELS)
    for name in names & set(known):
        allowed |= known[name]
    stray = sorted(grouping_labels(expr) - allowed)
    if stray:
        problems.append(f"groups by labels no metric of it has {stray}: {expr}")
    return problems


# ----------------------------------------------------------------- dashboard


@cache
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def dashboard_panels() -> list[dict[str, Any]]:
    panels = []
    for panel in dashboard()["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return [p for p in panels if p["type"] != "row"]


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expression with the variables filled in) for every query."""
    queries = []
    for panel in dashboard_panels():
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in VARIABLES.items():
                expr = expr.replace(variable, value)
            queries.append((panel["title"], expr))
    return queries


def test_dashboard_is_valid_json_with_unique_panels() -> None:
    board = dashboard()
    assert board["uid"]
    assert board["title"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in board["templating"]["list"]}
    assert {"datasource", "namespace", "service"} <= variables
    for panel in dashboard_panels():
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        assert panel["fieldConfig"]["defaults"].get("unit"), panel["title"]
    # Every variable a query uses is one the dashboard defines (or Grafana's own).
    for _, expr in dashboard_queries():
        assert "$" not in expr, expr


def test_dashboard_queries_read_only_defined_metrics() -> None:
    problems = []
    for title, expr in dashboard_queries():
        problems += [f"{title}: {p}" for p in check_expression(expr)]
    assert not problems, "\n".join(problems)


def test_dashboard_shows_the_signals_operations_needs() -> None:
    read = set().union(*(series_in(expr) for _, expr in dashboard_queries()))
    for name in (
        "photogram_http_requests_total",
        "photogram_http_request_errors_total",
        "photogram_http_request_duration_seconds_bucket",
        "photogram_delivery_latency_seconds_bucket",
        "photogram_consumer_lag",
        "photogram_outbox_oldest_unsent_age_seconds",
        "photogram_dead_letters_total",
        "photogram_shed_requests_total",
        "photogram_rate_limit_rejections_total",
    ):
        assert name in read, f"no panel reads {name}"
    exprs = [expr for _, expr in dashboard_queries()]
    # Golden signals per service and route: p50 and p99.
    for quantile in ("0.5", "0.99"):
        assert any(
            f"histogram_quantile({quantile}, sum by (service, route, le)" in e for e in exprs
        ), quantile
    # The feed's p99 as clients see it: the gateway's route.
    assert any(
        "histogram_quantile(0.99" in e and 'route="/api/feed"' in e and 'service="gateway"' in e
        for e in exprs
    )


def test_dashboard_queries_parse_with_promtool() -> None:
    groups = [
        {
            "name": "dashboard",
            "rules": [
                {"record": f"photogram:dashboard_query_{i}", "expr": expr}
                for i, (_, expr) in enumerate(dashboard_queries())
            ],
        }
    ]
    check_rules_with_promtool({"groups": groups})


# --------------------------------------------------------------------- rules


@cache
def rule_resource() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return doc


def alerts() -> list[dict[str, Any]]:
    return [rule for group in rule_resource()["spec"]["groups"] for rule in group["rules"]]


def anchors(markdown: str) -> set[str]:
    """The anchors GitHub makes of a document's headings."""
    found = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", markdown, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def test_rules_are_a_prometheus_rule_of_alerts() -> None:
    doc = rule_resource()
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    assert doc["kind"] == "PrometheusRule"
    names = [a["alert"] for a in alerts()]
    assert len(names) == len(set(names))
    for alert in alerts():
        assert set(alert) <= {"alert", "expr", "for", "labels", "annotations"}, alert["alert"]
        assert alert["labels"]["severity"] in {"critical", "warning"}, alert["alert"]
        assert {"summary", "description", "runbook_url"} <= set(alert["annotations"])


def test_every_alert_links_a_runbook_in_the_operations_guide() -> None:
    headings = anchors(OPERATIONS.read_text())
    for alert in alerts():
        url = alert["annotations"]["runbook_url"]
        page, _, anchor = url.partition("#")
        assert page.endswith("/docs/operations.md"), url
        assert anchor in headings, f"{alert['alert']}: no heading #{anchor} in docs/operations.md"


def test_alerts_read_only_defined_metrics() -> None:
    problems = []
    for alert in alerts():
        problems += [f"{alert['alert']}: {p}" for p in check_expression(alert["expr"])]
    assert not problems, "\n".join(problems)


def test_alerts_cover_the_runbooks() -> None:
    read = {name for alert in alerts() for name in series_in(alert["expr"])}
    for name in (
        "up",
        "photogram_http_request_duration_seconds_bucket",
        "photogram_consumer_lag",
        "photogram_outbox_oldest_unsent_age_seconds",
        "photogram_dead_letters_total",
        "photogram_shed_requests_total",
        "photogram_delivery_latency_seconds_bucket",
    ):
        assert name in read, f"no alert reads {name}"


def test_rules_pass_promtool() -> None:
    check_rules_with_promtool({"groups": rule_resource()["spec"]["groups"]})


# ------------------------------------------------------------------ promtool


def promtool() -> str | None:
    return os.environ.get("PHOTOGRAM_PROMTOOL") or shutil.which("promtool")


def check_rules_with_promtool(rule_file: dict[str, Any]) -> None:
    command = promtool()
    if command is None:
        # A run without promtool does not collect these checks (tests/deploy/conftest.py).
        pytest.fail("promtool not found: run scripts/validate-deploy.sh")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rules.yaml"
        path.write_text(yaml.safe_dump(rule_file, sort_keys=False))
        result = subprocess.run(  # noqa: S603
            [command, "check", "rules", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
    assert result.returncode == 0, result.stdout + result.stderr
