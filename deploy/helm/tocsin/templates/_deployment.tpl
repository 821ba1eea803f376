{{/* A stateless Tocsin process: (dict "root" $ "component" NAME "args" LIST "replicas" N
     "resources" MAP "env" MAP "influx" BOOL "ports" LIST-of-{name,port}
     "secretEnv" LIST-of-{name,secret,key}) */}}
{{- define "tocsin.deployment" -}}
{{- $root := .root -}}
{{- $name := printf "%s-%s" (include "tocsin.fullname" $root) .component -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  labels:
    {{- include "tocsin.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  replicas: {{ .replicas | default 1 }}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxUnavailable: 0, maxSurge: 1}
  selector:
    matchLabels:
      {{- include "tocsin.selector" (dict "root" $root "component" .component) | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "tocsin.labels" $root | nindent 8 }}
        app.kubernetes.io/component: {{ .component }}
      annotations:
        {{- include "tocsin.podAnnotations" $root | nindent 8 }}
    spec:
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets: {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      terminationGracePeriodSeconds: 60
      containers:
        - name: {{ .component }}
          image: {{ include "tocsin.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args: {{- toYaml .args | nindent 12 }}
          env:
            {{- include "tocsin.env" $root | nindent 12 }}
            {{- if .influx }}
            {{- include "tocsin.influxEnv" $root | nindent 12 }}
            {{- end }}
            {{- range .secretEnv }}
            - name: {{ .name }}
              valueFrom:
                secretKeyRef: {name: {{ .secret }}, key: {{ .key }}}
            {{- end }}
            {{- include "tocsin.extraEnv" (.env | default dict) | nindent 12 }}
          ports:
            - {name: metrics, containerPort: {{ $root.Values.metricsPort }}}
            {{- range .ports }}
            - {name: {{ .name }}, containerPort: {{ .port }}}
            {{- end }}
          {{- include "tocsin.probes" $root | nindent 10 }}
          resources:
            {{- toYaml .resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          volumeMounts:
            {{- include "tocsin.volumeMounts" $root | nindent 12 }}
      volumes:
        {{- include "tocsin.volumes" $root | nindent 8 }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
  labels:
    {{- include "tocsin.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  selector:
    {{- include "tocsin.selector" (dict "root" $root "component" .component) | nindent 4 }}
  ports:
    - {name: metrics, port: {{ $root.Values.metricsPort }}, targetPort: metrics}
    {{- range .ports }}
    - {name: {{ .name }}, port: {{ .port }}, targetPort: {{ .name }}}
    {{- end }}
{{- end -}}
