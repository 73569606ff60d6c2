{{- define "rowferry.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rowferry.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "rowferry.labels" -}}
app.kubernetes.io/name: {{ include "rowferry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "rowferry.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rowferry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "rowferry.secretName" -}}
{{- default (include "rowferry.fullname" .) .Values.existingSecret -}}
{{- end -}}

{{/* The HTTP port from config.http.listen ("addr:port"). */}}
{{- define "rowferry.httpPort" -}}
{{- $listen := default "0.0.0.0:8080" (dig "http" "listen" "" .Values.config) -}}
{{- last (splitList ":" $listen) -}}
{{- end -}}
