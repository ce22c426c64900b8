{{/* Name of the chart, overridable with nameOverride. */}}
{{- define "r1-oracle.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects (at most 63 characters, a DNS label). */}}
{{- define "r1-oracle.fullname" -}}
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

{{/* Labels selecting the oracle's pods; never change them (selectors are immutable). */}}
{{- define "r1-oracle.selectorLabels" -}}
app.kubernetes.io/name: {{ include "r1-oracle.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Standard labels of every object. */}}
{{- define "r1-oracle.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "r1-oracle.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: oracle
app.kubernetes.io/part-of: r1
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* ServiceAccount used by the pod. */}}
{{- define "r1-oracle.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "r1-oracle.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* host:port for a listener, bracketing IPv6 addresses as a Rust SocketAddr expects. */}}
{{- define "r1-oracle.listen" -}}
{{- $host := index . 0 }}
{{- if contains ":" $host }}
{{- printf "[%s]:%d" $host (int (index . 1)) }}
{{- else }}
{{- printf "%s:%d" $host (int (index . 1)) }}
{{- end }}
{{- end }}

{{/* Paths inside the container. */}}
{{- define "r1-oracle.configDir" -}}/etc/r1{{- end }}
{{- define "r1-oracle.keyDir" -}}/run/secrets/r1{{- end }}
{{- define "r1-oracle.dataDir" -}}/var/lib/r1-oracle{{- end }}

{{/* Fails rendering on values the schema cannot express. */}}
{{- define "r1-oracle.validate" -}}
{{- if hasKey .Values.podSecurityContext "fsGroup" }}
{{- fail "podSecurityContext.fsGroup must not be set: Kubernetes would make the key file group-readable (kubernetes/kubernetes#57923) and r1-oracle refuses such key files" }}
{{- end }}
{{- $ports := list (int64 .Values.api.port) (int64 .Values.metrics.port) }}
{{- if not .Values.broker.url }}
{{- $ports = append $ports (int64 .Values.broker.embeddedPort) }}
{{- end }}
{{- if ne (len $ports) (len (uniq $ports)) }}
{{- fail "api.port, metrics.port and broker.embeddedPort (with the embedded broker) must differ: each is its own listener" }}
{{- end }}
{{- if and .Values.persistence.enabled (eq .Values.updateStrategy "RollingUpdate") (not .Values.persistence.existingClaim) }}
{{- /* A ReadWriteOnce claim cannot be mounted by the surge pod on another node. */}}
{{- fail "persistence.enabled needs updateStrategy: Recreate (a ReadWriteOnce volume cannot be mounted by the old and the new pod at once)" }}
{{- end }}
{{- end }}

{{/* Names of the RBAC objects carry the release namespace: the ClusterRole is cluster-scoped and
a Role lives in kube.namespace, so two releases of one name must not collide there. */}}
{{- define "r1-oracle.clusterRoleName" -}}
{{- printf "%s-%s" .Release.Namespace (include "r1-oracle.fullname" .) }}
{{- end }}
