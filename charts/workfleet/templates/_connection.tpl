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
  value: "amqp://{{ index (include "workfleet.users" .root | fromYaml) .user }}:$({{ $password }})@{{ include "workfleet.rabbitmqName" .root }}:5672/%2F"
{{- end }}
