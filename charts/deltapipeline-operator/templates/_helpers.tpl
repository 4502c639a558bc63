{{/* Chart name, overridable with nameOverride. */}}
{{- define "deltapipeline-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects. A release named like the chart does not
repeat the name (deltapipeline-operator, not deltapipeline-operator-deltapipeline-operator).
*/}}
{{- define "deltapipeline-operator.fullname" -}}
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

{{- define "deltapipeline-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "deltapipeline-operator.labels" -}}
helm.sh/chart: {{ include "deltapipeline-operator.chart" . }}
{{ include "deltapipeline-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: deltapipeline
{{- end }}

{{- define "deltapipeline-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "deltapipeline-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
control-plane: controller-manager
{{- end }}

{{- define "deltapipeline-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "deltapipeline-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Manager image; the tag defaults to the chart's appVersion. */}}
{{- define "deltapipeline-operator.managerImage" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Worker image; the tag defaults to the chart's appVersion so operator and workers match. */}}
{{- define "deltapipeline-operator.workerImage" -}}
{{- printf "%s:%s" .Values.workerImage.repository (default .Chart.AppVersion .Values.workerImage.tag) }}
{{- end }}

{{/* Gateway image; the tag defaults to the chart's appVersion so operator and gateways match. */}}
{{- define "deltapipeline-operator.gatewayImage" -}}
{{- printf "%s:%s" .Values.gatewayImage.repository (default .Chart.AppVersion .Values.gatewayImage.tag) }}
{{- end }}

{{- define "deltapipeline-operator.upstreamGatewayImage" -}}
{{- printf "%s:%s" .Values.upstreamGatewayImage.repository (required "upstreamGatewayImage.tag is required" .Values.upstreamGatewayImage.tag) }}
{{- end }}
