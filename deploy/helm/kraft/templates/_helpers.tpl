{{/* The chart's name, or nameOverride. */}}
{{- define "kraft.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's full name: <release>-kraft, or just <release> when it already says kraft
(`helm install kraft …` makes objects named kraft, not kraft-kraft).
*/}}
{{- define "kraft.fullname" -}}
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

{{- define "kraft.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* What the pods are selected by; never changes between upgrades. */}}
{{- define "kraft.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kraft.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kraft.labels" -}}
helm.sh/chart: {{ include "kraft.chart" . }}
{{ include "kraft.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kraft.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kraft.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Cluster-scoped names carry the namespace: two releases of one name in two namespaces. */}}
{{- define "kraft.clusterRoleName" -}}
{{- printf "%s-%s" (include "kraft.fullname" .) .Release.Namespace }}
{{- end }}

{{/* The ClusterRole KRaft binds itself to in each cluster namespace it makes. */}}
{{- define "kraft.tenantRoleName" -}}
{{- default (printf "%s-tenant" (include "kraft.clusterRoleName" .)) .Values.config.tenantRole }}
{{- end }}

{{- define "kraft.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The port KRaft listens on: the part of config.addr after its last colon. */}}
{{- define "kraft.port" -}}
{{- splitList ":" .Values.config.addr | last | int }}
{{- end }}

{{/* The port /metrics is served on: config.metricsAddr's, else the UI's. */}}
{{- define "kraft.metricsPort" -}}
{{- if .Values.config.metricsAddr }}
{{- splitList ":" .Values.config.metricsAddr | last | int }}
{{- else }}
{{- include "kraft.port" . }}
{{- end }}
{{- end }}

{{/* The Secret and key DATABASE_URL comes from. */}}
{{- define "kraft.databaseSecret" -}}
{{- if .Values.database.url }}
{{- printf "%s-database" (include "kraft.fullname" .) }}
{{- else }}
{{- .Values.database.existingSecret }}
{{- end }}
{{- end }}

{{- define "kraft.databaseSecretKey" -}}
{{- if .Values.database.url }}url{{ else }}{{ .Values.database.existingSecretKey }}{{ end }}
{{- end }}

{{/* KRAFT_TLS: config.tls, or off behind the chart's Ingress and self-signed otherwise. */}}
{{- define "kraft.tls" -}}
{{- if .Values.config.tls }}
{{- .Values.config.tls }}
{{- else if .Values.ingress.enabled }}
{{- "off" }}
{{- else }}
{{- "self-signed" }}
{{- end }}
{{- end }}

{{/* Settings that only make sense together; refused at render time with what to set. */}}
{{- define "kraft.validate" -}}
{{- if and .Values.ingress.enabled (not .Values.config.publicUrl) }}
{{- fail "ingress.enabled needs config.publicUrl: the https:// address of the Ingress (e.g. https://kraft.example), which kubeconfigs point at" }}
{{- end }}
{{- if and (not .Values.database.url) (not .Values.database.existingSecret) }}
{{- fail "KRaft needs PostgreSQL: set database.existingSecret (a Secret holding DATABASE_URL) or database.url" }}
{{- end }}
{{- if and (not .Values.config.hostInCluster) (not .Values.config.hostKubeconfig) }}
{{- fail "config.hostInCluster is false and config.hostKubeconfig is empty: KRaft would run a simulated host inside the pod. Set one of them" }}
{{- end }}
{{- end }}
