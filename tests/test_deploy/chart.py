"""The chart rendered by the pinned Helm that scripts/install-helm builds."""

from __future__ import annotations

import json
import os
import subprocess
from functools import cache
from pathlib import Path

import promql_parser
import pytest
import yaml

from tests.kafka_broker import REPO

CHART = REPO / "deploy" / "helm" / "web2app-worker"
HELM = REPO / ".local" / "bin" / "helm"
EXAMPLES = {name: CHART / "examples" / f"{name}.yaml" for name in ("minimal", "every-option")}
# kubernetes-validate 1.37.0 ships schemas for each of these (and 1.30, 1.34 besides).
KUBERNETES_VERSIONS = ("1.31.0", "1.32.0", "1.33.0")
BROKERS = {"kafka.bootstrapServers": "kafka:9092"}
VARIANTS = ("defaults", "minimal", "every-option")


def helm(*args: str) -> subprocess.CompletedProcess:
    if not HELM.exists():
        message = f"Helm is not built: run scripts/install-helm ({HELM} is missing)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return subprocess.run([str(HELM), *args], capture_output=True, text=True, timeout=120)


def render(*values: Path, kube_version: str = KUBERNETES_VERSIONS[-1], **settings: str) -> list[dict]:
    """The manifests `helm template` writes, as objects; fails the test with Helm's message."""
    done = template(*values, kube_version=kube_version, **settings)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def template(*values: Path, kube_version: str = KUBERNETES_VERSIONS[-1], **settings: str) -> subprocess.CompletedProcess:
    args = ["template", "release", str(CHART), "--namespace", "growth", "--kube-version", kube_version]
    for path in values:
        args += ["--values", str(path)]
    for name, value in settings.items():
        args += ["--set", f"{name}={value}"]
    return helm(*args)


def of_kind(manifests: list[dict], kind: str) -> list[dict]:
    return [m for m in manifests if m["kind"] == kind]


def workload(manifests: list[dict]) -> dict:
    [found] = [m for m in manifests if m["kind"] in ("Deployment", "StatefulSet")]
    return found


def worker_container(manifests: list[dict]) -> dict:
    [container] = workload(manifests)["spec"]["template"]["spec"]["containers"]
    return container


def env_of(manifests: list[dict]) -> dict[str, dict]:
    return {entry["name"]: entry for entry in worker_container(manifests)["env"]}


@cache
def rendered(variant: str, kube_version: str = KUBERNETES_VERSIONS[-1]) -> list[dict]:
    if variant == "defaults":  # the chart's own values and the one value it cannot guess
        return render(kube_version=kube_version, **BROKERS)
    return render(EXAMPLES[variant], kube_version=kube_version)


def alert_rules() -> list[dict]:
    [rule] = of_kind(rendered("every-option"), "PrometheusRule")
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def dashboard_expressions() -> list[str]:
    [config_map] = [m for m in of_kind(rendered("every-option"), "ConfigMap") if "web2app-worker.json" in m["data"]]
    dashboard = json.loads(config_map["data"]["web2app-worker.json"])
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def promql(expression: str) -> promql_parser.Expr:
    """Grafana replaces `$__rate_interval` by a range before Prometheus sees the query."""
    return promql_parser.parse(expression.replace("$__rate_interval", "5m"))


def metric_names(expression: str) -> set[str]:
    names: set[str] = set()
    promql_parser.walk(promql(expression), lambda node: names.add(node.name)
                       if isinstance(node, promql_parser.VectorSelector) else None)
    return names


def metrics_the_chart_uses() -> set[str]:
    return set().union(*map(metric_names, [r["expr"] for r in alert_rules()] + dashboard_expressions()))
