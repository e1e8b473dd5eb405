{{/* "true" when monitoring objects are wanted and the cluster serves prometheus-operator's API. */}}
{{- define "workfleet.monitoringAvailable" -}}
{{- if and .Values.monitoring.enabled (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1") }}true{{ end }}
{{- end }}

{{/* Relabelings that put release="<release name>" on every series scraped from the release: two
releases in one namespace (same namespace, same queue names) stay apart in the dashboard and the alerts. */}}
{{- define "workfleet.releaseRelabelings" -}}
relabelings:
  - targetLabel: release
    replacement: {{ .Release.Name | quote }}
{{- end }}

{{/* Labels of a monitoring object: the component's, plus monitoring.labels for Prometheus to select on. */}}
{{- define "workfleet.monitoringLabels" -}}
{{ include "workfleet.componentLabels" . }}
{{- with .root.Values.monitoring.labels }}
{{ toYaml . }}
{{- end }}
{{- end }}
