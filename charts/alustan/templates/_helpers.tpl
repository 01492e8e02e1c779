{{/* The chart name, or nameOverride. */}}
{{- define "alustan.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of every resource name: the release name, plus the chart name unless it already contains it. */}}
{{- define "alustan.fullname" -}}
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

{{/* Labels of every object. */}}
{{- define "alustan.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "alustan.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the agent Pods (never change them: Deployment selectors are immutable). */}}
{{- define "alustan.selectorLabels" -}}
app.kubernetes.io/name: {{ include "alustan.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end }}

{{/* The agent's ServiceAccount name. */}}
{{- define "alustan.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "alustan.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding the agent-wide docker config.json, or "" when there is none. */}}
{{- define "alustan.registrySecretName" -}}
{{- if .Values.containerRegistrySecret }}
{{- printf "%s-registry" (include "alustan.fullname" .) }}
{{- else if .Values.existingSecret }}
{{- .Values.existingSecret }}
{{- end }}
{{- end }}

{{/* The key of that Secret holding config.json. */}}
{{- define "alustan.registrySecretKey" -}}
{{- if .Values.containerRegistrySecret }}config.json{{ else }}{{ .Values.existingSecretKey }}{{ end }}
{{- end }}

{{/* The agent image reference. */}}
{{- define "alustan.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
