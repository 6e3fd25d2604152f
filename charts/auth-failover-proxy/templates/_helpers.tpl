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
{{- if hasKey $pool "askForStreamUsage" }}{{- $_ := set $p "AskForStreamUsage" $pool.askForStreamUsage -}}{{- end -}}
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
{{- range .Values.clients.tokens -}}
{{- $client := dict "Name" . -}}
{{- with (get ($.Values.clients.budgets | default dict) .) -}}
{{- $budget := dict -}}
{{- if .requestsPerMinute }}{{- $_ := set $budget "RequestsPerMinute" .requestsPerMinute -}}{{- end -}}
{{- if .tokensPerMinute }}{{- $_ := set $budget "TokensPerMinute" .tokensPerMinute -}}{{- end -}}
{{- if .tokensPerDay }}{{- $_ := set $budget "TokensPerDay" .tokensPerDay -}}{{- end -}}
{{- $_ := set $client "Budget" $budget -}}
{{- end -}}
{{- $clients = append $clients $client -}}
{{- end -}}
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

{{/*
What values.schema.json cannot say (it compares no two values): checked when the Deployment renders, each failure
naming the value to fix.
*/}}
{{- define "afp.validate" -}}
{{- if and .Values.redis.deploy.enabled .Values.redis.configuration }}
{{- fail "Set redis.configuration (an external Redis) or redis.deploy.enabled (a single trial pod), not both." }}
{{- end }}
{{- if eq (int .Values.service.agentPort) (int .Values.service.managementPort) }}
{{- fail (printf "service.agentPort and service.managementPort are both %v: the management API (/status, /metrics, the admin API) must never share the agents' port; give them two ports." .Values.service.agentPort) }}
{{- end }}
{{- if gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas) }}
{{- fail (printf "autoscaling.minReplicas (%v) is above autoscaling.maxReplicas (%v)." .Values.autoscaling.minReplicas .Values.autoscaling.maxReplicas) }}
{{- end }}
{{- range $name, $_ := .Values.clients.budgets }}
{{- if not (has $name $.Values.clients.tokens) }}
{{- fail (printf "clients.budgets.%s names no client: add '%s' to clients.tokens, or remove its budget." $name $name) }}
{{- end }}
{{- end }}
{{- range $poolName, $pool := .Values.pools }}
{{- $seen := dict }}
{{- range $i, $key := $pool.keys }}
{{- if hasKey $seen $key.name }}
{{- fail (printf "pools.%s.keys[%d].name is '%s', like pools.%s.keys[%v]: each key of a pool needs a name of its own (it names the key's Secret entry, metrics and alerts)." $poolName $i $key.name $poolName (get $seen $key.name)) }}
{{- end }}
{{- $_ := set $seen $key.name $i }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The TCP port a URL reaches: its own, else its scheme's (http 80, https 443). */}}
{{- define "afp.urlPort" -}}
{{- $url := urlParse . -}}
{{- $hostPort := splitList ":" $url.host -}}
{{- if and (gt (len $hostPort) 1) (regexMatch "^[0-9]+$" (last $hostPort)) -}}
{{- last $hostPort -}}
{{- else if eq $url.scheme "http" -}}
80
{{- else -}}
443
{{- end -}}
{{- end -}}

{{/*
The egress ports the values configure, as JSON {"upstream": [ports], "notify": [ports]}: each pool's upstream (or its
connectTo), and for alerts and telemetry HTTPS (webhook and heartbeat URLs are in the Secret), each email channel's
SMTP port and each OTLP endpoint's port (Telemetry:Otlp:Endpoint in config, OTEL_EXPORTER_OTLP_*ENDPOINT in extraEnv).
*/}}
{{- define "afp.egressPorts" -}}
{{- $upstream := dict -}}
{{- range $poolName, $pool := .Values.pools -}}
{{- if and $pool.transport $pool.transport.connectTo -}}
{{- $_ := set $upstream (last (splitList ":" $pool.transport.connectTo)) true -}}
{{- else -}}
{{- $url := $pool.upstream | default (ternary "https://api.openai.com" "https://api.anthropic.com" (eq $pool.kind "openai")) -}}
{{- $_ := set $upstream (include "afp.urlPort" $url) true -}}
{{- end -}}
{{- end -}}
{{- $notify := dict "443" true -}}
{{- range $name, $channel := .Values.alerts.channels -}}
{{- if eq $channel.type "email" -}}
{{- $_ := set $notify (toString (int ($channel.port | default 587))) true -}}
{{- end -}}
{{- end -}}
{{- $otlp := list -}}
{{- with dig "Telemetry" "Otlp" "Endpoint" "" .Values.config -}}
{{- $otlp = append $otlp . -}}
{{- end -}}
{{- range .Values.extraEnv -}}
{{- if and (regexMatch "^OTEL_EXPORTER_OTLP_([A-Z]+_)?ENDPOINT$" (toString .name)) .value -}}
{{- $otlp = append $otlp .value -}}
{{- end -}}
{{- end -}}
{{- range $otlp -}}
{{- $_ := set $notify (include "afp.urlPort" .) true -}}
{{- end -}}
{{- dict "upstream" (keys $upstream | sortAlpha) "notify" (keys $notify | sortAlpha) | toJson -}}
{{- end -}}

{{/* The Secret and entry holding the management token (Management:Token), or "" when none is configured. */}}
{{- define "afp.managementTokenSecretName" -}}
{{- if .Values.management.existingSecret -}}
{{- .Values.management.existingSecret -}}
{{- else if .Values.management.token -}}
{{- if .Values.secrets.existingSecret -}}
{{- fail "management.token is kept in the chart's Secret, which secrets.existingSecret replaces: put the token in your Secret and set management.existingSecret (and management.existingSecretKey)." -}}
{{- end -}}
{{- include "afp.fullname" . -}}
{{- end -}}
{{- end -}}

{{- define "afp.managementTokenSecretKey" -}}
{{- if .Values.management.existingSecret -}}
{{- .Values.management.existingSecretKey -}}
{{- else -}}
management-token
{{- end -}}
{{- end -}}
