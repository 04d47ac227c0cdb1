{{/* Labels every object of the release carries. */}}
{{- define "vnode.labels" -}}
app.kubernetes.io/name: vnode
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "vnode.image" -}}
{{ printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end -}}

{{/* Every container's securityContext: the image's unprivileged user, nothing more than it needs.
Container-level, so the playground's process provider (which runs processes as its own user)
ignores it as a whole. */}}
{{- define "vnode.securityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities: {drop: [ALL]}
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "vnode.credentialsSecret" -}}
{{ default (printf "%s-credentials" .Values.name) .Values.credentials.existingSecret }}
{{- end -}}

{{/* "true" when ECI's keys come from kube-system/alibaba-addon-secret, the Secret ack-virtual-node's
install guide has users create: it exists (helm lookup; empty under helm template) and no other
credentials are given. */}}
{{- define "vnode.useAddonSecret" -}}
{{- if and (eq .Values.provider "eci") (not .Values.credentials.existingSecret) (not .Values.credentials.accessKeyId) (lookup "v1" "Secret" "kube-system" "alibaba-addon-secret") -}}
true
{{- end -}}
{{- end -}}

{{/* The daemon's settings, as the field's environment variables; shared by the StatefulSet and the uninstall hook. */}}
{{- define "vnode.settingsEnv" -}}
- name: VNODE_PROVIDER
  value: {{ .Values.provider | quote }}
- name: VNODE_CLUSTER_ID
  value: {{ .Values.clusterId | quote }}
{{- if eq .Values.provider "eci" }}
- name: ECI_REGION
  value: {{ .Values.eci.region | quote }}
{{- with .Values.eci.endpoint }}
- name: ECI_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- with .Values.eci.vSwitches }}
- name: ECI_VSWITCH
  value: {{ join "," . | quote }}
{{- end }}
{{- with .Values.eci.securityGroup }}
- name: ECI_SECURITY_GROUP
  value: {{ . | quote }}
{{- end }}
- name: ECI_KUBE_PROXY
  value: {{ .Values.eci.kubeProxy | quote }}
{{- if include "vnode.useAddonSecret" . }}
- name: ECI_CREDENTIALS_SECRET
  value: kube-system/alibaba-addon-secret
{{- else }}
- name: ECI_ACCESS_KEY
  valueFrom:
    secretKeyRef: {name: {{ include "vnode.credentialsSecret" . }}, key: access-key-id}
- name: ECI_SECRET_KEY
  valueFrom:
    secretKeyRef: {name: {{ include "vnode.credentialsSecret" . }}, key: access-key-secret}
{{- end }}
{{- with .Values.capacity.cpu }}
- name: ECI_QUOTA_CPU
  value: {{ . | quote }}
{{- end }}
{{- with .Values.capacity.memoryGiB }}
- name: ECI_QUOTA_MEMORY
  value: {{ . | quote }}
{{- end }}
{{- with .Values.capacity.pods }}
- name: ECI_QUOTA_POD
  value: {{ . | quote }}
{{- end }}
{{- if ne (toString .Values.capacity.gpus) "" }}
- name: ECI_QUOTA_GPU
  value: {{ .Values.capacity.gpus | quote }}
{{- end }}
{{- else if eq .Values.provider "aci" }}
- name: ACI_REGION
  value: {{ .Values.aci.region | quote }}
{{- range $key, $env := dict "endpoint" "ACI_ENDPOINT" "subscriptionId" "ACI_SUBSCRIPTION_ID" "resourceGroup" "ACI_RESOURCE_GROUP" "tenantId" "ACI_TENANT_ID" "clientId" "ACI_CLIENT_ID" "subnet" "ACI_SUBNET" }}
{{- with index $.Values.aci $key }}
- name: {{ $env }}
  value: {{ . | quote }}
{{- end }}
{{- end }}
- name: ACI_CLIENT_SECRET
  valueFrom:
    secretKeyRef: {name: {{ include "vnode.credentialsSecret" . }}, key: client-secret, optional: true}
- name: ACI_TOKEN
  valueFrom:
    secretKeyRef: {name: {{ include "vnode.credentialsSecret" . }}, key: token, optional: true}
{{- if .Values.aci.caConfigMap }}
- name: ACI_CA_FILE
  value: /etc/vnode/aci-ca/ca.pem
{{- end }}
{{- with .Values.capacity.cpu }}
- name: ACI_QUOTA_CPU
  value: {{ . | quote }}
{{- end }}
{{- with .Values.capacity.memoryGiB }}
- name: ACI_QUOTA_MEMORY
  value: {{ . | quote }}
{{- end }}
{{- with .Values.capacity.pods }}
- name: ACI_QUOTA_POD
  value: {{ . | quote }}
{{- end }}
{{- else if eq .Values.provider "process" }}
{{- with .Values.process.dir }}
- name: VNODE_PROCESS_DIR
  value: {{ . | quote }}
{{- end }}
{{- with .Values.process.apiServer }}
- name: VNODE_PROCESS_API_SERVER
  value: {{ . | quote }}
{{- end }}
{{- with .Values.process.caFile }}
- name: VNODE_PROCESS_CA_FILE
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- end -}}
