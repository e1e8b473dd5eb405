{{/* AMQP URL env for a broker user: the password comes from the Secret and is put
in with Kubernetes' $(VAR) expansion, so it never appears in the pod spec. */}}
{{- define "workfleet.amqpEnv" -}}
- name: WORKFLEET_BROKER_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "workfleet.credentialsSecretName" .root }}
      key: {{ .user }}-password
- name: WORKFLEET_AMQP_URL
  value: "amqp://{{ index (include "workfleet.users" .root | fromYaml) .user }}:$(WORKFLEET_BROKER_PASSWORD)@{{ include "workfleet.rabbitmqName" .root }}:5672/%2F"
{{- end }}
