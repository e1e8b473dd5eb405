{{/* Names: "<release>-workfleet" unless overridden, cut to 63 characters. */}}
{{- define "workfleet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "workfleet.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* "<fullname>-<component>", kept within 63 characters. */}}
{{- define "workfleet.componentName" -}}
{{- printf "%s-%s" (include "workfleet.fullname" .root | trunc (int (sub 62 (len .component))) | trimSuffix "-") .component }}
{{- end }}

{{/* Labels every object carries; component objects add app.kubernetes.io/component. */}}
{{- define "workfleet.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "workfleet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: workfleet
{{- end }}

{{/* The stable part: never change these on an existing release (selectors are immutable). */}}
{{- define "workfleet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "workfleet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "workfleet.componentLabels" -}}
{{ include "workfleet.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "workfleet.componentSelectorLabels" -}}
{{ include "workfleet.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* A workfleet image: [registry/]repository:tag, the tag defaulting to image.tag, then appVersion. */}}
{{- define "workfleet.image" -}}
{{- $tag := .image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion }}
{{- if .root.Values.image.registry }}
{{- printf "%s/%s:%s" .root.Values.image.registry .image.repository $tag }}
{{- else }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}
{{- end }}

{{- define "workfleet.rabbitmqName" -}}
{{ include "workfleet.componentName" (dict "root" . "component" "rabbitmq") }}
{{- end }}

{{/* The headless Service that gives each broker node its stable DNS name. */}}
{{- define "workfleet.rabbitmqNodesName" -}}
{{ include "workfleet.componentName" (dict "root" . "component" "rabbitmq-nodes") }}
{{- end }}

{{- define "workfleet.credentialsSecretName" -}}
{{- .Values.auth.existingSecret | default (include "workfleet.componentName" (dict "root" . "component" "credentials")) }}
{{- end }}

{{- define "workfleet.definitionsSecretName" -}}
{{ include "workfleet.componentName" (dict "root" . "component" "rabbitmq-definitions") }}
{{- end }}

{{/* The broker's users; the operator's may only read stats (monitoring tag, no permissions). */}}
{{- define "workfleet.users" -}}
admin: admin
worker: workfleet-worker
producer: workfleet-producer
operator: workfleet-operator
{{- end }}

{{/* Pod and container security that meets the "restricted" Pod Security Standard. */}}
{{- define "workfleet.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "workfleet.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end }}

{{/* How long a task may hold its message, in whole seconds: the hard time limit (worker.taskTimeoutSeconds
plus its grace) when there is one, else rabbitmq.longestTaskSeconds. The consumer timeout, the
termination grace period, the forgotten-ack window and the long-task alert all follow it. */}}
{{- define "workfleet.longestTaskSeconds" -}}
{{- with .Values.worker.taskTimeoutSeconds -}}
{{- ceil (addf . $.Values.worker.taskTimeoutGraceSeconds) | int -}}
{{- else -}}
{{- .Values.rabbitmq.longestTaskSeconds | int -}}
{{- end -}}
{{- end }}

{{/* The label that lets a pod of the release's namespace publish to the broker (see networkPolicy). */}}
{{- define "workfleet.clientLabel" -}}
workfleet.dev/broker-client: {{ include "workfleet.fullname" . | quote }}
{{- end }}

{{/* The workers' ServiceAccount: the chart's own, the one named, or the namespace's default. */}}
{{- define "workfleet.workerServiceAccountName" -}}
{{- if .Values.worker.serviceAccount.create }}
{{- .Values.worker.serviceAccount.name | default (include "workfleet.componentName" (dict "root" . "component" "worker")) }}
{{- else }}
{{- .Values.worker.serviceAccount.name | default "default" }}
{{- end }}
{{- end }}

{{/* A Kubernetes quantity ("1Gi", "512Mi", "2G", "1073741824") in bytes, as an integer. */}}
{{- define "workfleet.bytes" -}}
{{- $match := regexFind "^[0-9]+(\\.[0-9]+)?" (toString .) }}
{{- $suffix := trimPrefix $match (toString .) }}
{{- $units := dict "" 1 "k" 1000 "K" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000
      "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 }}
{{- if or (not $match) (not (hasKey $units $suffix)) }}
{{- fail (printf "%q is not a memory or disk size: write it as Kubernetes does, for example 2Gi or 512Mi" (toString .)) }}
{{- end }}
{{- mulf (float64 $match) (get $units $suffix) | floor | int64 }}
{{- end }}

{{/* The broker's memory alarm threshold in bytes: rabbitmq.memoryHighWatermark, or half the container's
memory limit; empty with neither (RabbitMQ's relative default applies). */}}
{{- define "workfleet.memoryHighWatermarkBytes" -}}
{{- with .Values.rabbitmq.memoryHighWatermark }}
{{- include "workfleet.bytes" . }}
{{- else }}
{{- with (.Values.rabbitmq.resources.limits | default dict).memory }}
{{- div (include "workfleet.bytes" . | int64) 2 }}
{{- end }}
{{- end }}
{{- end }}
