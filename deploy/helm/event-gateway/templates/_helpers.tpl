{{- define "event-gateway.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "event-gateway.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "event-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "event-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "event-gateway.labels" -}}
{{ include "event-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "event-gateway.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}
{{- end -}}

{{/* The configuration file: the values' config, with what the chart owns set. */}}
{{- define "event-gateway.config" -}}
{{- $config := deepCopy .Values.config -}}
{{- $_ := set $config "data_dir" "/data" -}}
{{- $server := default dict $config.server -}}
{{- $_ := set $server "host" "0.0.0.0" -}}
{{- $_ := set $config "server" $server -}}
{{- $kafka := default dict $config.kafka -}}
{{- $_ := set $kafka "bootstrap_servers" .Values.kafka.bootstrapServers -}}
{{- $_ := set $config "kafka" $kafka -}}
{{- if .Values.admin.enabled -}}
{{- $_ := set $config "admin" (dict "host" "0.0.0.0" "port" .Values.admin.port "token" (printf "${file:/etc/gateway/secrets/%s/%s}" .Values.admin.tokenSecret.name .Values.admin.tokenSecret.key)) -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}
