"""The chart rendered by the pinned Helm that scripts/install-helm builds."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.kafka_broker import REPO

CHART = REPO / "deploy" / "helm" / "web2app-worker"
HELM = REPO / ".local" / "bin" / "helm"
EXAMPLES = {name: CHART / "examples" / f"{name}.yaml" for name in ("minimal", "every-option")}
# kubernetes-validate 1.37.0 ships schemas for each of these (and 1.30, 1.34 besides).
KUBERNETES_VERSIONS = ("1.31.0", "1.32.0", "1.33.0")


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
