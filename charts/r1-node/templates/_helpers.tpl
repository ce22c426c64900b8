{{/* Name of the chart, overridable with nameOverride. */}}
{{- define "r1-node.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects (at most 63 characters, a DNS label). */}}
{{- define "r1-node.fullname" -}}
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

{{/* Labels selecting the agent's pods; never change them (selectors are immutable). */}}
{{- define "r1-node.selectorLabels" -}}
app.kubernetes.io/name: {{ include "r1-node.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Standard labels of every object. */}}
{{- define "r1-node.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "r1-node.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: node-agent
app.kubernetes.io/part-of: r1
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* ServiceAccount used by the pod. */}}
{{- define "r1-node.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "r1-node.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* host:port for a listener, bracketing IPv6 addresses as a Rust SocketAddr expects. */}}
{{- define "r1-node.listen" -}}
{{- $host := index . 0 }}
{{- if contains ":" $host }}
{{- printf "[%s]:%d" $host (int (index . 1)) }}
{{- else }}
{{- printf "%s:%d" $host (int (index . 1)) }}
{{- end }}
{{- end }}

{{/* Paths inside the container. */}}
{{- define "r1-node.configDir" -}}/etc/r1{{- end }}
{{- define "r1-node.keyDir" -}}/run/secrets/r1{{- end }}

{{/* The key file's path: one entry of the Secret (subPath) per node, or the shared entry. */}}
{{- define "r1-node.keyFile" -}}
{{- if .Values.key.perNode }}
{{- printf "%s/node.key" (include "r1-node.keyDir" .) }}
{{- else }}
{{- printf "%s/%s" (include "r1-node.keyDir" .) .Values.key.secretKey }}
{{- end }}
{{- end }}

{{/* The local API socket inside apiSocketDir. */}}
{{- define "r1-node.apiSocket" -}}
{{- printf "%s/node.sock" (trimSuffix "/" .Values.apiSocketDir) }}
{{- end }}

{{/* Whether imagesDir needs its own host mount (it is set and not inside dataDir). */}}
{{- define "r1-node.mountImagesDir" -}}
{{- if and .Values.imagesDir (ne .Values.imagesDir .Values.dataDir) (not (hasPrefix (printf "%s/" (trimSuffix "/" .Values.dataDir)) .Values.imagesDir)) }}true{{ end }}
{{- end }}

{{/* Fails rendering on values the schema cannot express. */}}
{{- define "r1-node.validate" -}}
{{- if hasKey .Values.podSecurityContext "fsGroup" }}
{{- fail "podSecurityContext.fsGroup must not be set: Kubernetes would make the key file group-readable (kubernetes/kubernetes#57923) and r1-node refuses such key files" }}
{{- end }}
{{- if gt (int64 .Values.ports.first) (int64 .Values.ports.last) }}
{{- fail "ports.first must be at most ports.last" }}
{{- end }}
{{- if gt (int64 .Values.restartBackoff.initialMs) (int64 .Values.restartBackoff.maxMs) }}
{{- fail "restartBackoff.initialMs must be at most restartBackoff.maxMs" }}
{{- end }}
{{- if not .Values.oracles }}
{{- fail "oracles: name the oracles whose signed commands this node obeys (their 0x addresses), e.g. --set 'oracles={0x…}'; for a local devnet use -f values-devnet.yaml" }}
{{- end }}
{{- if not .Values.broker.url }}
{{- fail "broker.url: name the MQTT broker, e.g. --set broker.url=mqtts://broker.example.com:8883 (with broker.caSecret for a private CA); for a local devnet use -f values-devnet.yaml" }}
{{- end }}
{{- end }}
