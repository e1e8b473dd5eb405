{{/* AMQP URL env for a broker user: the password comes from the Secret and is put
in with Kubernetes' $(VAR) expansion, so it never appears in the pod spec. "urlVariable" names the URL's
variable when a pod needs two users (the password's is then that name with _PASSWORD). */}}
{{- define "workfleet.amqpEnv" -}}
{{- $url := .urlVariable | default "WORKFLEET_AMQP_URL" }}
{{- $password := ternary "WORKFLEET_BROKER_PASSWORD" (printf "%s_PASSWORD" $url) (not .urlVariable) }}
- name: {{ $password }}
  valueFrom:
    secretKeyRef:
      name: {{ include "workfleet.credentialsSecretName" .root }}
      key: {{ .user }}-password
- name: {{ $url }}
  value: "{{ include "workfleet.amqpScheme" .root }}://{{ index (include "workfleet.users" .root | fromYaml) .user }}:$({{ $password }})@{{ include "workfleet.rabbitmqName" .root }}:{{ include "workfleet.amqpPort" .root }}/%2F"
{{- if and .root.Values.tls.enabled (not .urlVariable) }}
- {name: WORKFLEET_AMQP_CA_FILE, value: {{ include "workfleet.caFile" .root | quote }}}
{{- end }}
{{- end }}

{{/* The broker's endpoints, plain or TLS (tls.enabled): port numbers and URL schemes. */}}
{{- define "workfleet.amqpPort" -}}{{ ternary 5671 5672 .Values.tls.enabled }}{{- end }}
{{- define "workfleet.managementPort" -}}{{ ternary 15671 15672 .Values.tls.enabled }}{{- end }}
{{- define "workfleet.amqpScheme" -}}{{ ternary "amqps" "amqp" .Values.tls.enabled }}{{- end }}
{{- define "workfleet.managementUrl" -}}
{{- printf "%s://%s:%s" (ternary "https" "http" .Values.tls.enabled) (include "workfleet.rabbitmqName" .) (include "workfleet.managementPort" .) }}
{{- end }}

{{/* The Secret holding the broker's certificate (tls.crt, tls.key) and its CA (ca.crt). */}}
{{- define "workfleet.tlsSecretName" -}}
{{- .Values.tls.existingSecret | default (include "workfleet.componentName" (dict "root" . "component" "tls")) }}
{{- end }}

{{/* Where a client finds the CA; with the volume below. */}}
{{- define "workfleet.caFile" -}}/etc/workfleet-ca/ca.crt{{- end }}

{{/* The CA's volume and its mount at caFile, for a client of the broker (tls.enabled only). */}}
{{- define "workfleet.caVolume" -}}
- name: broker-ca
  secret:
    secretName: {{ include "workfleet.tlsSecretName" . }}
    items: [{key: ca.crt, path: ca.crt}]
{{- end }}
{{- define "workfleet.caMount" -}}
- {name: broker-ca, mountPath: /etc/workfleet-ca, readOnly: true}
{{- end }}
