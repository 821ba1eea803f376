{{- define "tocsin.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tocsin.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* selector labels of one component: (dict "root" $ "component" "worker") */}}
{{- define "tocsin.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "tocsin.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "tocsin.secretName" -}}
{{- default (printf "%s-secrets" (include "tocsin.fullname" .)) .Values.influx.existingSecret -}}
{{- end -}}

{{/* the Secret holding the PAN token key and the ingest's bearer-token hashes */}}
{{- define "tocsin.paymentsSecretName" -}}
{{- default (printf "%s-payments" (include "tocsin.fullname" .)) .Values.payments.existingSecret -}}
{{- end -}}

{{/* environment every Tocsin process reads (the same TOCSIN_* variables as docker-compose) */}}
{{- define "tocsin.env" -}}
- name: TOCSIN_BROKER
  value: {{ .Values.kafka.bootstrap | quote }}
- name: TOCSIN_TOPIC_PREFIX
  value: {{ .Values.kafka.topicPrefix | quote }}
- name: TOCSIN_PARTITIONS
  value: {{ .Values.kafka.partitions | quote }}
- name: TOCSIN_METRICS_PORT
  value: {{ .Values.metricsPort | quote }}
- name: TOCSIN_METRICS_HOST
  value: "0.0.0.0"
- name: TOCSIN_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: TOCSIN_WORKER_NAME
  valueFrom: {fieldRef: {fieldPath: metadata.name}}
{{- if .Values.plantConfig }}
- name: TOCSIN_PLANT_CONFIG
  value: /etc/tocsin/plant.yaml
{{- end }}
{{- end -}}

{{- define "tocsin.influxEnv" -}}
- name: TOCSIN_INFLUX_URL
  value: {{ .Values.influx.url | quote }}
- name: TOCSIN_INFLUX_ORG
  value: {{ .Values.influx.org | quote }}
- name: TOCSIN_INFLUX_BUCKET
  value: {{ .Values.influx.bucket | quote }}
- name: TOCSIN_INFLUX_TOKEN
  valueFrom:
    secretKeyRef: {name: {{ include "tocsin.secretName" . }}, key: influx-token}
{{- end -}}

{{- define "tocsin.extraEnv" -}}
{{- range $k, $v := . }}
- name: {{ $k }}
  value: {{ $v | quote }}
{{- end }}
{{- end -}}

{{/* probes on the health endpoints every process serves on the metrics port */}}
{{- define "tocsin.probes" -}}
startupProbe:
  httpGet: {path: /healthz, port: metrics}
  {{- toYaml .Values.probes.startup | nindent 2 }}
livenessProbe:
  httpGet: {path: /healthz, port: metrics}
  {{- toYaml .Values.probes.liveness | nindent 2 }}
readinessProbe:
  httpGet: {path: /readyz, port: metrics}
  {{- toYaml .Values.probes.readiness | nindent 2 }}
{{- end -}}

{{- define "tocsin.podAnnotations" -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.metricsPort | quote }}
prometheus.io/path: /metrics
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- end -}}

{{/* volumes of a stateless component: writable /tmp and home, config */}}
{{- define "tocsin.volumes" -}}
- name: tmp
  emptyDir: {}
- name: home
  emptyDir: {}
- name: config
  configMap: {name: {{ include "tocsin.fullname" . }}-config}
{{- end -}}

{{- define "tocsin.volumeMounts" -}}
- {name: tmp, mountPath: /tmp}
- {name: home, mountPath: /var/lib/tocsin}
- {name: config, mountPath: /etc/tocsin, readOnly: true}
{{- end -}}
