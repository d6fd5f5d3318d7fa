{{- define "web2app.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "web2app.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "web2app.labels" -}}
{{ include "web2app.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "web2app.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{- define "web2app.saslEnabled" -}}
{{- if hasPrefix "SASL_" .Values.kafka.securityProtocol }}true{{ end -}}
{{- end -}}

{{- define "web2app.tlsEnabled" -}}
{{- if has .Values.kafka.securityProtocol (list "SSL" "SASL_SSL") }}true{{ end -}}
{{- end -}}

{{/* The series of this release in alert expressions: the job a ServiceMonitor names after the Service. */}}
{{- define "web2app.series" -}}
{{- .Values.prometheusRule.seriesSelector | default (printf "namespace=%q, job=%q" .Release.Namespace (include "web2app.fullname" .)) -}}
{{- end -}}

{{/* Values that would make a broken or unsafe release stop the install, with the reason. */}}
{{- define "web2app.checks" -}}
{{- $v := .Values -}}
{{- if not $v.kafka.bootstrapServers -}}
{{- fail "kafka.bootstrapServers is required" -}}
{{- end -}}
{{- if not (has $v.kafka.securityProtocol (list "PLAINTEXT" "SSL" "SASL_PLAINTEXT" "SASL_SSL")) -}}
{{- fail (printf "kafka.securityProtocol must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, not %q" $v.kafka.securityProtocol) -}}
{{- end -}}
{{- if and (include "web2app.saslEnabled" .) (not $v.kafka.sasl.passwordSecret.name) -}}
{{- fail (printf "kafka.sasl.passwordSecret.name is required with %s" $v.kafka.securityProtocol) -}}
{{- end -}}
{{- if and (include "web2app.saslEnabled" .) (not (has $v.kafka.sasl.mechanism (list "PLAIN" "SCRAM-SHA-256" "SCRAM-SHA-512"))) -}}
{{- fail (printf "kafka.sasl.mechanism must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, not %q" $v.kafka.sasl.mechanism) -}}
{{- end -}}
{{- if not (has $v.store (list "memory" "rocksdb")) -}}
{{- fail (printf "store must be memory or rocksdb, not %q" $v.store) -}}
{{- end -}}
{{- range $name := list "KAFKA_SASL_PASSWORD" "TOKEN_ENCRYPTION_KEYS" "ANALYTICS_TOKEN" -}}
{{- if hasKey $v.env $name -}}
{{- fail (printf "env.%s would put a secret in the manifest: name its Secret instead (see the chart's README)" $name) -}}
{{- end -}}
{{- end -}}
{{- if gt (int $v.replicaCount) (int $v.topics.partitions) -}}
{{- fail (printf "replicaCount (%d) exceeds topics.partitions (%d): the replicas beyond it would own no partition" (int $v.replicaCount) (int $v.topics.partitions)) -}}
{{- end -}}
{{- if and $v.autoscaling.enabled (gt (int $v.autoscaling.maxReplicas) (int $v.topics.partitions)) -}}
{{- fail (printf "autoscaling.maxReplicas (%d) exceeds topics.partitions (%d): the replicas beyond it would own no partition" (int $v.autoscaling.maxReplicas) (int $v.topics.partitions)) -}}
{{- end -}}
{{- if and $v.autoscaling.enabled (or (lt (int $v.autoscaling.minReplicas) 1) (gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas))) -}}
{{- fail "autoscaling.minReplicas must be at least 1 (a running replica releases unjoined events) and at most autoscaling.maxReplicas" -}}
{{- end -}}
{{- if and $v.networkPolicy.enabled (not $v.networkPolicy.kafkaPeers) -}}
{{- fail "networkPolicy.kafkaPeers is required when networkPolicy.enabled: without it the worker cannot reach Kafka" -}}
{{- end -}}
{{- end -}}

{{/* Where an alert's runbook entry is: the README's section, at runbookUrl when the README is published. */}}
{{- define "web2app.runbook" -}}
{{- $r := index . 0 -}}
{{- if $r.runbookUrl -}}
runbook_url: {{ printf "%s#%s" $r.runbookUrl (index . 1 | lower) }}
{{- else -}}
runbook: {{ printf "the worker's README, Running on Kubernetes, runbook: %s" (index . 1) | quote }}
{{- end -}}
{{- end -}}
