{{/* Names and labels shared by every template. */}}

{{- define "afp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "afp.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "afp.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "afp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "afp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "afp.labels" -}}
helm.sh/chart: {{ include "afp.chart" . }}
{{ include "afp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "afp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "afp.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret the pods read: the chart's own, or the one named in secrets.existingSecret. */}}
{{- define "afp.secretName" -}}
{{- default (include "afp.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "afp.redisName" -}}
{{- printf "%s-redis" (include "afp.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* PromQL label matchers for this release's scrape targets (the ServiceMonitor's job is the Service name). */}}
{{- define "afp.promSelector" -}}
{{- printf "job=%q, namespace=%q" (include "afp.fullname" .) .Release.Namespace -}}
{{- end -}}

{{/* Where the pods mount things. */}}
{{- define "afp.configDir" -}}/etc/auth-failover-proxy{{- end -}}
{{- define "afp.keysDir" -}}/var/run/secrets/auth-failover-proxy/keys{{- end -}}
{{- define "afp.clientCertsDir" -}}/var/run/secrets/auth-failover-proxy/client-certificates{{- end -}}

{{/*
appsettings.json: only settings that are safe to read. Key secrets arrive as files (KeysDirectory), client and admin
tokens, the data key, the heartbeat URL, alert URLs and secrets and the Redis configuration as environment variables
from the Secret; the names here line up with them by index or by name.
*/}}
{{- define "afp.appsettings" -}}
{{- $pools := dict -}}
{{- range $poolName, $pool := .Values.pools -}}
{{- $keys := list -}}
{{- range $pool.keys -}}
{{- $key := dict "Name" .name -}}
{{- if hasKey . "priority" }}{{- $_ := set $key "Priority" .priority -}}{{- end -}}
{{- if .scheme }}{{- $_ := set $key "Scheme" .scheme -}}{{- end -}}
{{- $keys = append $keys $key -}}
{{- end -}}
{{- $p := dict "Kind" $pool.kind "Keys" $keys "KeysDirectory" (printf "%s/%s" (include "afp.keysDir" $) $poolName) -}}
{{- if $pool.upstream }}{{- $_ := set $p "Upstream" $pool.upstream -}}{{- end -}}
{{- if $pool.pathPrefix }}{{- $_ := set $p "PathPrefix" $pool.pathPrefix -}}{{- end -}}
{{- if $pool.probePath }}{{- $_ := set $p "ProbePath" $pool.probePath -}}{{- end -}}
{{- if hasKey $pool "default" }}{{- $_ := set $p "Default" $pool.default -}}{{- end -}}
{{- if $pool.selection }}{{- $_ := set $p "Selection" $pool.selection -}}{{- end -}}
{{- if $pool.fallback }}{{- $_ := set $p "Fallback" $pool.fallback -}}{{- end -}}
{{- if $pool.fallbackModel }}{{- $_ := set $p "FallbackModel" $pool.fallbackModel -}}{{- end -}}
{{- if $pool.scheme }}{{- $_ := set $p "Scheme" $pool.scheme -}}{{- end -}}
{{- with $pool.transport -}}
{{- $t := dict -}}
{{- if .caBundle }}{{- $_ := set $t "CaBundle" (printf "%s/ca.%s.pem" (include "afp.configDir" $) $poolName) -}}{{- end -}}
{{- if .clientCertificateSecret -}}
{{- $_ := set $t "ClientCertificate" (printf "%s/%s/tls.crt" (include "afp.clientCertsDir" $) $poolName) -}}
{{- $_ := set $t "ClientCertificateKey" (printf "%s/%s/tls.key" (include "afp.clientCertsDir" $) $poolName) -}}
{{- end -}}
{{- if .httpVersion }}{{- $_ := set $t "HttpVersion" (toString .httpVersion) -}}{{- end -}}
{{- if .connectTo }}{{- $_ := set $t "ConnectTo" .connectTo -}}{{- end -}}
{{- $_ := set $p "Transport" $t -}}
{{- end -}}
{{- $_ := set $pools $poolName $p -}}
{{- end -}}
{{- $clients := list -}}
{{- range .Values.clients.tokens }}{{- $clients = append $clients (dict "Name" .) -}}{{- end -}}
{{- $admins := list -}}
{{- range .Values.admin.tokens }}{{- $admins = append $admins (dict "Name" .) -}}{{- end -}}
{{- $channels := dict -}}
{{- range $name, $channel := .Values.alerts.channels -}}
{{- $c := dict "Type" $channel.type -}}
{{- range $field := list "minSeverity" "events" "host" "port" "security" "username" "from" "to" -}}
{{- if hasKey $channel $field }}{{- $_ := set $c (title $field) (get $channel $field) -}}{{- end -}}
{{- end -}}
{{- $_ := set $channels $name $c -}}
{{- end -}}
{{- $settings := dict
  "Pools" $pools
  "Clients" (dict "Tokens" $clients "AllowAnonymous" .Values.clients.allowAnonymous)
  "Admin" (dict "Tokens" $admins)
  "RequestBody" (dict "TempDirectory" "/tmp")
  "Audit" (dict "Directory" "/data")
  "Alerts" (dict "Channels" $channels "Deployment" (printf "%s/%s" .Release.Namespace .Release.Name))
  "Heartbeat" (dict "Interval" .Values.heartbeat.interval)
-}}
{{- if .Values.redis.deploy.enabled -}}
{{- $_ := set $settings "Redis" (dict "Configuration" (printf "%s:6379" (include "afp.redisName" .))) -}}
{{- end -}}
{{- mustMergeOverwrite $settings (deepCopy .Values.config) | toPrettyJson -}}
{{- end -}}
