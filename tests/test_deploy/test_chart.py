"""The Helm chart, checked offline: lint, strict schemas, the values that must hold whatever is set."""

from __future__ import annotations

import copy
import re
from dataclasses import fields

import kubernetes_validate
import pytest
import yaml

from tests.kafka_broker import REPO
from tests.test_deploy.chart import (BROKERS, CHART, EXAMPLES, KUBERNETES_VERSIONS, VARIANTS, alert_rules,
                                     dashboard_expressions, env_of, helm, metric_names, of_kind, promql, render,
                                     rendered, template, worker_container, workload)
from tests.test_deploy.crd_fields import CRD_FIELDS, KAFKA_SCALER_AUTH_PARAMETERS, unknown_fields
from worker.settings import Settings
from worker.topics import TopicNames


def settings_of(manifests: list[dict]) -> Settings:
    return Settings.from_env({name: e["value"] for name, e in env_of(manifests).items() if "value" in e})


def test_lint_passes_over_the_default_values_and_every_example():
    for values in ([], ["--values", str(EXAMPLES["minimal"])], ["--values", str(EXAMPLES["every-option"])]):
        done = helm("lint", "--strict", str(CHART), *values)
        assert done.returncode == 0, done.stdout + done.stderr


def test_the_readmes_dozen_lines_are_the_minimal_example():
    example = EXAMPLES["minimal"].read_text().split("\n", 1)[1]  # less its comment
    assert f"```yaml\n{example}```" in (REPO / "README.md").read_text()
    assert len(example.splitlines()) <= 14


def test_the_default_values_ask_for_the_brokers_by_name():
    done = template()
    assert done.returncode != 0 and "kafka.bootstrapServers is required" in done.stderr


@pytest.mark.parametrize("kube_version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_manifest_validates_strictly_against_kubernetes(variant, kube_version):
    for manifest in rendered(variant, kube_version):
        if (manifest["apiVersion"], manifest["kind"]) in CRD_FIELDS:
            assert unknown_fields(manifest) == [], f"{manifest['kind']}: fields its CRD does not publish"
        else:
            kubernetes_validate.validate(manifest, kube_version, strict=True)


def test_the_checks_catch_a_misspelt_field():
    manifests = rendered("every-option")
    deployment = copy.deepcopy(workload(rendered("defaults")))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["periodSecond"] = 5
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)
    scaled = copy.deepcopy(of_kind(manifests, "ScaledObject")[0])
    scaled["spec"]["maxReplicas"] = 3
    scaled["spec"]["triggers"][0]["metadata"]["lagTreshold"] = "10"
    assert sorted(unknown_fields(scaled)) == ["spec.maxReplicas", "spec.triggers[].metadata.lagTreshold"]


def test_every_option_renders_each_kind_of_object():
    kinds = {m["kind"] for m in rendered("every-option")}
    assert kinds == {"StatefulSet", "Service", "PodDisruptionBudget", "ServiceMonitor", "NetworkPolicy",
                     "ScaledObject", "TriggerAuthentication", "PrometheusRule", "ConfigMap"}
    assert {m["kind"] for m in rendered("defaults")} == {"Deployment", "Service", "PodDisruptionBudget"}


def test_the_rendered_output_holds_no_secret_value():
    secret_settings = {f.metadata["env"] for f in fields(Settings) if not f.repr}
    assert secret_settings == {"KAFKA_SASL_PASSWORD", "TOKEN_ENCRYPTION_KEYS", "ANALYTICS_TOKEN"}
    for variant in VARIANTS:
        manifests = rendered(variant)
        assert not of_kind(manifests, "Secret")
        env = env_of(manifests)
        for name in secret_settings & set(env):
            assert set(env[name]) == {"name", "valueFrom"}, f"{name} given as a literal value"
    for name in secret_settings:
        done = template(**BROKERS, **{f"env.{name}": "hunter2-not-for-manifests"})
        assert done.returncode != 0 and "hunter2" not in done.stdout
        assert f"env.{name} would put a secret in the manifest" in done.stderr


def test_secrets_reach_the_worker_as_files_from_their_secrets():
    manifests = rendered("every-option")
    env, pod = env_of(manifests), workload(manifests)["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in worker_container(manifests)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    expected = {"KAFKA_SASL_PASSWORD_FILE": ("web2app-kafka", "password"),
                "KAFKA_SSL_CAFILE": ("web2app-kafka-tls", "ca.crt"),
                "KAFKA_SSL_CERTFILE": ("web2app-kafka-tls", "tls.crt"),
                "KAFKA_SSL_KEYFILE": ("web2app-kafka-tls", "tls.key"),
                "TOKEN_ENCRYPTION_KEYS_FILE": ("web2app-token-keys", "keys")}
    for setting, (secret_name, key) in expected.items():
        directory, file = env[setting]["value"].rsplit("/", 1)
        secret = volumes[mounts[directory]]["secret"]
        assert secret["secretName"] == secret_name
        items = {i["path"]: i["key"] for i in secret.get("items", [])}
        assert items.get(file, file) == key, f"{setting} names no key of {secret_name}"
        assert secret["defaultMode"] & 0o040, "the worker's group (fsGroup) must read it"


@pytest.mark.parametrize("shutdown", ["5", "30", "120"])
def test_the_grace_period_exceeds_the_shutdown_timeout(shutdown):
    for variant in ("defaults", "every-option"):
        values = [] if variant == "defaults" else [EXAMPLES[variant]]
        manifests = render(*values, **BROKERS, shutdownTimeoutSeconds=shutdown)
        grace = workload(manifests)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert settings_of(manifests).shutdown_timeout_s == int(shutdown) < grace


def test_the_autoscaler_never_exceeds_the_partitions():
    for variant in ("minimal", "every-option"):
        manifests = rendered(variant)
        [scaled] = of_kind(manifests, "ScaledObject")
        assert scaled["spec"]["maxReplicaCount"] <= settings_of(manifests).topic_partitions
    done = template(EXAMPLES["minimal"], **{"autoscaling.maxReplicas": "9", "topics.partitions": "8"})
    assert done.returncode != 0
    assert "autoscaling.maxReplicas (9) exceeds topics.partitions (8)" in done.stderr
    done = template(**BROKERS, replicaCount="9")
    assert done.returncode != 0 and "replicaCount (9) exceeds topics.partitions (8)" in done.stderr


def test_the_autoscaler_reads_the_workers_group_on_the_cpu_bound_topics_with_its_credentials():
    manifests = rendered("every-option")
    settings, topics = settings_of(manifests), TopicNames.of(settings_of(manifests))
    [scaled], [auth] = of_kind(manifests, "ScaledObject"), of_kind(manifests, "TriggerAuthentication")
    assert scaled["spec"]["scaleTargetRef"]["name"] == workload(manifests)["metadata"]["name"]
    triggers = [t["metadata"] for t in scaled["spec"]["triggers"]]
    assert {(t["topic"], t["consumerGroup"]) for t in triggers} == {
        (topics.clicks, settings.group_of("ingest")), (topics.app_events, settings.group_of("ingest")),
        (topics.by_ttclid, settings.app_id)}
    assert {(t["sasl"], t["tls"]) for t in triggers} == {("scram_sha256", "enable")}
    assert {t["authenticationRef"]["name"] for t in scaled["spec"]["triggers"]} == {auth["metadata"]["name"]}
    parameters = {r["parameter"] for r in auth["spec"]["secretTargetRef"] + auth["spec"]["env"]}
    assert parameters == {"username", "password", "ca", "cert", "key"} <= KAFKA_SCALER_AUTH_PARAMETERS
    behavior = scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 300, "each step is a rebalance"


def test_the_pod_runs_as_non_root_on_a_read_only_root_with_no_capabilities_and_probes_the_worker():
    for variant in VARIANTS:
        manifests = rendered(variant)
        pod, container = workload(manifests)["spec"]["template"]["spec"], worker_container(manifests)
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                                "capabilities": {"drop": ["ALL"]}}
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
        assert settings_of(manifests).data_dir in writable and "/tmp" in writable


def test_the_image_is_multi_stage_slim_and_runs_as_the_charts_non_root_user():
    dockerfile = (REPO / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", dockerfile, flags=re.M)[1:]
    assert len(stages) >= 2 and stages[-1].split()[0].endswith("-slim")
    user = re.findall(r"^USER (\d+)(?::(\d+))?$", stages[-1], flags=re.M)
    pod = workload(rendered("defaults"))["spec"]["template"]["spec"]["securityContext"]
    assert user == [(str(pod["runAsUser"]), str(pod["runAsGroup"]))]
    assert "pip install" not in stages[-1], "build tools stay in the build stage"


def test_the_disk_store_gets_a_statefulset_with_a_volume_per_replica_for_data_dir():
    manifests = render(**BROKERS, store="rocksdb")
    statefulset = workload(manifests)
    assert statefulset["kind"] == "StatefulSet"
    [claim] = statefulset["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in worker_container(manifests)["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == settings_of(manifests).data_dir
    assert not any(v["name"] == claim["metadata"]["name"] for v in statefulset["spec"]["template"]["spec"]["volumes"])
    assert settings_of(manifests).state_store == "rocksdb"
    defaults = rendered("defaults")
    assert workload(defaults)["kind"] == "Deployment" and settings_of(defaults).state_store == "memory"


def test_a_node_drain_takes_one_replica_at_a_time_and_replicas_spread_over_nodes():
    manifests = rendered("defaults")
    [budget] = of_kind(manifests, "PodDisruptionBudget")
    pod = workload(manifests)["spec"]["template"]
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    keys = {c["topologyKey"] for c in pod["spec"]["topologySpreadConstraints"]}
    assert "kubernetes.io/hostname" in keys


def test_the_network_policy_lets_the_worker_reach_kafka_tiktok_and_dns_only():
    [policy] = of_kind(rendered("every-option"), "NetworkPolicy")
    egress = policy["spec"]["egress"]
    ports = [sorted(p["port"] for p in rule["ports"]) for rule in egress]
    assert ports == [[9093], [443], [53, 53]]
    assert egress[0]["to"][0] == {"ipBlock": {"cidr": "10.20.0.0/16"}}
    assert "10.0.0.0/8" in egress[1]["to"][0]["ipBlock"]["except"]
    done = template(**BROKERS, **{"networkPolicy.enabled": "true"})
    assert done.returncode != 0 and "networkPolicy.kafkaPeers is required" in done.stderr


def test_every_alert_and_panel_expression_parses():
    rules = alert_rules()
    assert {r["alert"] for r in rules} == {"Web2appLagGrowing", "Web2appDeadLetters", "Web2appBadResults",
                                          "Web2appPixelThrottled", "Web2appNoReplicaReady", "Web2appNoResults"}
    for expression in [r["expr"] for r in rules] + dashboard_expressions():
        promql(expression)
    with pytest.raises(ValueError):
        promql("sum(rate(web2app_results_total[5m])")


def test_every_alert_selects_this_releases_series_and_has_a_runbook_entry_in_the_readme():
    readme = (REPO / "README.md").read_text()
    for rule in alert_rules():
        assert 'namespace="growth"' in rule["expr"] and 'job="release-web2app-worker"' in rule["expr"]
        assert rule["annotations"]["runbook_url"].endswith("#" + rule["alert"].lower())
        assert f"#### {rule['alert']}" in readme, f"no runbook entry for {rule['alert']}"


def test_the_dashboard_shows_each_stage_lag_results_answers_latencies_and_ttclids():
    used = set().union(*map(metric_names, dashboard_expressions()))
    assert {"web2app_records_read_total", "web2app_consumer_lag", "web2app_results_total",
            "web2app_tiktok_requests_total", "web2app_stage_seconds_bucket", "web2app_ttclids_held"} <= used


def test_the_charts_readme_documents_every_value():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    readme = (CHART / "README.md").read_text()

    def leaves(tree: dict, prefix: str = "") -> list[str]:
        return [path for key, value in tree.items()
                for path in (leaves(value, f"{prefix}{key}.") if isinstance(value, dict) and value
                             and key not in ("resources", "labels") else [f"{prefix}{key}"])]

    missing = [path for path in leaves(values) if f"`{path}`" not in readme and f"`{path}`," not in readme]
    assert missing == []
