{{/*
Names. Kubernetes object names and label values are DNS labels of at most 63 characters
(RFC 1123), so every name is truncated to 63 and a trailing "-" left by the cut is removed.
*/}}

{{/* The chart's name: "asrpool", or nameOverride. */}}
{{- define "asrpool.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's base name: fullnameOverride, else RELEASE-asrpool, or just RELEASE when the
release name already contains the chart name (helm install asrpool ./charts/asrpool).
*/}}
{{- define "asrpool.fullname" -}}
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

{{/* NAME-operator and NAME-router, truncated again: the suffix may push past 63. */}}
{{- define "asrpool.operator.fullname" -}}
{{- printf "%s-operator" (include "asrpool.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "asrpool.router.fullname" -}}
{{- printf "%s-router" (include "asrpool.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* chart-version, as the helm.sh/chart label wants it ("+" is not allowed in labels). */}}
{{- define "asrpool.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object of the release. */}}
{{- define "asrpool.labels" -}}
helm.sh/chart: {{ include "asrpool.chart" . }}
{{ include "asrpool.selectorLabels" . }}
app.kubernetes.io/part-of: asrpool
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The labels selectors use: stable across upgrades (a Deployment's selector is immutable). */}}
{{- define "asrpool.selectorLabels" -}}
app.kubernetes.io/name: {{ include "asrpool.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Per component: call with (dict "ctx" $ "component" "router"). */}}
{{- define "asrpool.componentLabels" -}}
{{ include "asrpool.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "asrpool.componentSelectorLabels" -}}
{{ include "asrpool.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The router pods as a label selector string (the operator reads their /metrics). */}}
{{- define "asrpool.router.selector" -}}
app.kubernetes.io/name={{ include "asrpool.name" . }},app.kubernetes.io/instance={{ .Release.Name }},app.kubernetes.io/component=router
{{- end }}

{{- define "asrpool.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "asrpool.operator.fullname" .) .Values.operator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "asrpool.router.serviceAccountName" -}}
{{- if .Values.router.serviceAccount.create }}
{{- default (include "asrpool.router.fullname" .) .Values.router.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.router.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding the router's API key: the user's, or the one this chart generates. */}}
{{- define "asrpool.router.apiKeySecretName" -}}
{{- if .Values.router.apiKey.existingSecret }}
{{- .Values.router.apiKey.existingSecret }}
{{- else }}
{{- printf "%s-api-key" (include "asrpool.router.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* REPOSITORY:TAG, the tag defaulting to the chart's appVersion. Call with an image map. */}}
{{- define "asrpool.image" -}}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag) }}
{{- end }}

{{/* The restricted pod and container security contexts every pod of the chart runs with. */}}
{{- define "asrpool.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "asrpool.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end }}

{{/* The Secret holding the token routers send workers: the user's, or the one this chart makes. */}}
{{- define "asrpool.workerTokenSecretName" -}}
{{- if .Values.workerToken.existingSecret }}
{{- .Values.workerToken.existingSecret }}
{{- else }}
{{- printf "%s-worker-token" (include "asrpool.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
