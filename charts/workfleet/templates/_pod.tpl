{{/* What every component's pod template shares: labels, annotations, and where it may run.
Each takes (dict "root" $ "component" "<name>" "values" <the component's values>). */}}

{{/* Pod labels carry neither the chart's version nor the app's: a chart bump that changes
nothing in a pod then leaves it running (for the broker, a restart is an outage on one node).
The component's podLabels come last; validate.yaml keeps them off the selector's keys. */}}
{{- define "workfleet.podLabels" -}}
{{ include "workfleet.componentSelectorLabels" . }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: workfleet
{{- with .values.podLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The component's podAnnotations and the chart's own ("annotations", optional), which win:
a checksum the user could override would no longer restart the pod on a change. */}}
{{- define "workfleet.podAnnotations" -}}
{{- $annotations := merge (dict) (.annotations | default dict) (.values.podAnnotations | default dict) }}
{{- with $annotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Scheduling: priority class, node selection, tolerations, affinity and spread. A default
spread ("spread", optional) applies while the component's topologySpreadConstraints is null;
an empty list turns it off. */}}
{{- define "workfleet.podScheduling" -}}
{{- with .values.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $spread := .values.topologySpreadConstraints }}
{{- if kindIs "invalid" $spread }}
{{- $spread = .spread }}
{{- end }}
{{- with $spread }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
