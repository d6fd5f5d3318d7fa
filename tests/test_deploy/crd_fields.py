"""The field names of the custom resources the chart renders, as their CRDs publish them.

kubernetes-validate knows the built-in kinds only. These tables were copied from the CRDs'
openAPIV3Schema (`properties` of each object the chart fills in), for the objects this chart uses:

- KEDA v2.20.2, config/crd/bases/keda.sh_scaledobjects.yaml and keda.sh_triggerauthentications.yaml
  (github.com/kedacore/keda); the Kafka scaler's trigger metadata and auth parameters from
  pkg/scalers/kafka_scaler.go, the `keda:"name=...,order=..."` tags of kafkaMetadata.
- Prometheus Operator v0.93.0, example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml
  and monitoring.coreos.com_prometheusrules.yaml (github.com/prometheus-operator/prometheus-operator).

A path is the object's fields joined by dots, `[]` for the items of a list; FREE_FORM maps take any key.
"""

CRD_FIELDS: dict[tuple[str, str], dict[str, set[str]]] = {
    ("keda.sh/v1alpha1", "ScaledObject"): {
        "": {"apiVersion", "kind", "metadata", "spec", "status"},
        "spec": {"advanced", "cooldownPeriod", "fallback", "idleReplicaCount", "initialCooldownPeriod",
                 "maxReplicaCount", "minReplicaCount", "pollingInterval", "scaleTargetRef", "triggers"},
        "spec.scaleTargetRef": {"apiVersion", "envSourceContainerName", "kind", "name"},
        "spec.advanced": {"horizontalPodAutoscalerConfig", "restoreToOriginalReplicaCount", "scalingModifiers"},
        "spec.advanced.horizontalPodAutoscalerConfig": {"behavior", "name"},
        "spec.advanced.horizontalPodAutoscalerConfig.behavior": {"scaleDown", "scaleUp"},
        "spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleUp":
            {"policies", "selectPolicy", "stabilizationWindowSeconds", "tolerance"},
        "spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleUp.policies[]": {"periodSeconds", "type", "value"},
        "spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown":
            {"policies", "selectPolicy", "stabilizationWindowSeconds", "tolerance"},
        "spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.policies[]": {"periodSeconds", "type", "value"},
        "spec.triggers[]": {"authenticationRef", "metadata", "metricType", "name", "type", "useCachedMetrics"},
        "spec.triggers[].authenticationRef": {"kind", "name"},
        # A map of strings in the CRD; these are the keys KEDA's Kafka scaler reads from it.
        "spec.triggers[].metadata": {
            "activationLagThreshold", "allowIdleConsumers", "awsRegion", "bootstrapServers", "consumerGroup",
            "ensureEvenDistributionOfPartitions", "excludePersistentLag", "lagThreshold", "limitToPartitionsWithLag",
            "offsetResetPolicy", "partitionLimitation", "sasl", "saslTokenProvider", "scaleToZeroOnInvalidOffset",
            "tls", "topic", "unsafeSsl", "version"},
    },
    ("keda.sh/v1alpha1", "TriggerAuthentication"): {
        "": {"apiVersion", "kind", "metadata", "spec", "status"},
        "spec": {"awsSecretManager", "azureKeyVault", "boundServiceAccountToken", "configMapTargetRef", "env",
                 "filePath", "gcpSecretManager", "hashiCorpVault", "oauth2", "podIdentity", "secretTargetRef"},
        "spec.env[]": {"containerName", "name", "parameter"},
        "spec.secretTargetRef[]": {"key", "name", "parameter"},
    },
    ("monitoring.coreos.com/v1", "ServiceMonitor"): {
        "": {"apiVersion", "kind", "metadata", "spec", "status"},
        "spec": {"attachMetadata", "bodySizeLimit", "convertClassicHistogramsToNHCB", "endpoints",
                 "fallbackScrapeProtocol", "jobLabel", "keepDroppedTargets", "labelLimit", "labelNameLengthLimit",
                 "labelValueLengthLimit", "namespaceSelector", "nativeHistogramBucketLimit",
                 "nativeHistogramMinBucketFactor", "podTargetLabels", "sampleLimit", "scrapeClass",
                 "scrapeClassicHistograms", "scrapeNativeHistograms", "scrapeProtocols", "selector",
                 "selectorMechanism", "serviceDiscoveryRole", "targetLabels", "targetLimit"},
        "spec.selector": {"matchExpressions", "matchLabels"},
        "spec.endpoints[]": {"authorization", "basicAuth", "bearerTokenFile", "bearerTokenSecret", "enableHttp2",
                             "filterRunning", "followRedirects", "honorLabels", "honorTimestamps", "interval",
                             "metricRelabelings", "noProxy", "oauth2", "params", "path", "port",
                             "proxyConnectHeader", "proxyFromEnvironment", "proxyUrl", "relabelings", "scheme",
                             "scrapeTimeout", "targetPort", "tlsConfig", "trackTimestampsStaleness"},
    },
    ("monitoring.coreos.com/v1", "PrometheusRule"): {
        "": {"apiVersion", "kind", "metadata", "spec", "status"},
        "spec": {"groups"},
        "spec.groups[]": {"interval", "labels", "limit", "name", "partial_response_strategy", "query_offset", "rules"},
        "spec.groups[].rules[]": {"alert", "annotations", "expr", "for", "keep_firing_for", "labels", "record"},
    },
}

# The Kafka scaler's parameters that only a TriggerAuthentication gives (kafka_scaler.go, order=authParams).
KAFKA_SCALER_AUTH_PARAMETERS = {
    "ca", "cert", "kerberosConfig", "kerberosDisableFAST", "kerberosServiceName", "key", "keyPassword", "keytab",
    "oauthExtensions", "oauthTokenEndpointUri", "password", "realm", "sasl", "saslTokenProvider", "scopes", "tls",
    "username"}

FREE_FORM = {"spec.selector.matchLabels", "spec.groups[].rules[].labels", "spec.groups[].rules[].annotations"}

# Object metadata is Kubernetes' own ObjectMeta, checked by name only here.
OBJECT_META = {"name", "namespace", "labels", "annotations"}


def unknown_fields(resource: dict) -> list[str]:
    """Fields of a custom resource that its CRD does not publish, as dotted paths."""
    table = CRD_FIELDS[(resource["apiVersion"], resource["kind"])]
    problems = [f"metadata.{key}" for key in resource.get("metadata", {}) if key not in OBJECT_META]

    def walk(value, path: str) -> None:
        if isinstance(value, list):
            for item in value:
                walk(item, path + "[]")
        elif isinstance(value, dict) and path not in FREE_FORM and path != "metadata":
            if path not in table:
                problems.append(f"{path}: not among the published objects this check knows")
                return
            for key, item in value.items():
                if key not in table[path]:
                    problems.append(f"{path}.{key}" if path else key)
                else:
                    walk(item, f"{path}.{key}" if path else key)

    walk(resource, "")
    return problems
