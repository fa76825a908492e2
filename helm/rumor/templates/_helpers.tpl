{{/*
The chart name, or nameOverride.
*/}}
{{- define "rumor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's resources. Kept to 50 characters, so that the
longest suffix the chart adds ("-gossip-key") still fits a DNS label.
*/}}
{{- define "rumor.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "rumor.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every resource.
*/}}
{{- define "rumor.labels" -}}
helm.sh/chart: {{ include "rumor.chart" . }}
{{ include "rumor.selectorLabels" . }}
app.kubernetes.io/version: {{ include "rumor.imageTag" . | replace "+" "_" | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: rumor
{{- end }}

{{/*
Labels that select the release's pods. Never change them: a Deployment's
selector is immutable.
*/}}
{{- define "rumor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rumor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The ServiceAccount the pods run as.
*/}}
{{- define "rumor.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rumor.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "rumor.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{- define "rumor.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "rumor.imageTag" .) }}
{{- end }}
{{- end }}

{{/*
The headless Service that peers find each other through.
*/}}
{{- define "rumor.gossipServiceName" -}}
{{- printf "%s-gossip" (include "rumor.fullname" .) }}
{{- end }}

{{/*
The ClusterIP Service of the admin listener (admin.enabled).
*/}}
{{- define "rumor.adminServiceName" -}}
{{- printf "%s-admin" (include "rumor.fullname" .) }}
{{- end }}

{{/*
The address every node joins: the gossip Service's fully qualified name, which
resolves to every pod, ready or not. rumor re-resolves it periodically.
*/}}
{{- define "rumor.joinAddress" -}}
{{- printf "%s.%s.svc.%s:%d" (include "rumor.gossipServiceName" .) .Release.Namespace .Values.clusterDomain (int .Values.gossip.port) }}
{{- end }}

{{- define "rumor.gossipBindAddress" -}}
{{- $host := .Values.gossip.bindAddress }}
{{- if contains ":" $host }}
{{- printf "[%s]:%d" $host (int .Values.gossip.port) }}
{{- else }}
{{- printf "%s:%d" $host (int .Values.gossip.port) }}
{{- end }}
{{- end }}

{{- define "rumor.clusterLabel" -}}
{{- default (printf "%s.%s" .Release.Name .Release.Namespace) .Values.gossip.clusterLabel }}
{{- end }}

{{/*
The Secret with the gossip key: the user's existingSecret, or the chart's own.
*/}}
{{- define "rumor.gossipSecretName" -}}
{{- default (printf "%s-gossip-key" (include "rumor.fullname" .)) .Values.gossip.encryption.existingSecret }}
{{- end }}

{{- define "rumor.gossipSecretKey" -}}
{{- if .Values.gossip.encryption.existingSecret }}
{{- .Values.gossip.encryption.existingSecretKey }}
{{- else -}}
gossip-key
{{- end }}
{{- end }}

{{/*
The gossip key the chart's Secret holds, in base64, in this order:
  1. gossip.encryption.key, when set;
  2. the key in the Secret this release already has in the cluster (lookup), so an
     upgrade never changes the key: nodes with different keys cannot talk;
  3. a new random 32-byte key, on first install.
`helm template` and `--dry-run` have no cluster to look in and so show a new key each
time. The result is kept for the rest of the render, so the Secret and the pods'
checksum annotation see the same key.
*/}}
{{- define "rumor.gossipKey" -}}
{{- $enc := .Values.gossip.encryption }}
{{- if not (hasKey $enc "_resolvedKey") }}
{{- $key := $enc.key }}
{{- if not $key }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "rumor.gossipSecretName" .) }}
{{- $data := dig "data" (dict) $existing }}
{{- $key = get $data "gossip-key" | b64dec }}
{{- end }}
{{- if not $key }}
{{- $key = randBytes 32 }}
{{- end }}
{{- $_ := set $enc "_resolvedKey" $key }}
{{- end }}
{{- get $enc "_resolvedKey" }}
{{- end }}

{{/*
The Secret with auth key material: the user's existingSecret, or the chart's own.
*/}}
{{- define "rumor.authSecretName" -}}
{{- default (printf "%s-auth" (include "rumor.fullname" .)) .Values.auth.existingSecret }}
{{- end }}

{{/*
Items of the auth Secret that the pod mounts, as a list of {key, path, env, value}:
value is the chart value the item comes from, for error messages. auth.jwksUrl is no
item: it is a plain variable, not key material, and with it alone nothing is mounted.
*/}}
{{- define "rumor.authItems" -}}
{{- $items := list }}
{{- $a := .Values.auth }}
{{- if $a.existingSecret }}
{{- with $a.existingSecretKeys.hmacSecret }}{{ $items = append $items (dict "key" . "path" "hmac-secret" "env" "RUMOR_AUTH_HMAC_SECRET_FILE" "value" "auth.existingSecretKeys.hmacSecret") }}{{ end }}
{{- with $a.existingSecretKeys.publicKey }}{{ $items = append $items (dict "key" . "path" "public-key.pem" "env" "RUMOR_AUTH_PUBLIC_KEY" "value" "auth.existingSecretKeys.publicKey") }}{{ end }}
{{- with $a.existingSecretKeys.jwks }}{{ $items = append $items (dict "key" . "path" "jwks.json" "env" "RUMOR_AUTH_JWKS" "value" "auth.existingSecretKeys.jwks") }}{{ end }}
{{- else }}
{{- if $a.hmacSecret }}{{ $items = append $items (dict "key" "hmac-secret" "path" "hmac-secret" "env" "RUMOR_AUTH_HMAC_SECRET_FILE" "value" "auth.hmacSecret") }}{{ end }}
{{- if $a.publicKey }}{{ $items = append $items (dict "key" "public-key.pem" "path" "public-key.pem" "env" "RUMOR_AUTH_PUBLIC_KEY" "value" "auth.publicKey") }}{{ end }}
{{- if $a.jwks }}{{ $items = append $items (dict "key" "jwks.json" "path" "jwks.json" "env" "RUMOR_AUTH_JWKS" "value" "auth.jwks") }}{{ end }}
{{- end }}
{{- if and $a.enabled (empty $items) (not $a.jwksUrl) }}
{{- fail "auth.enabled needs key material: set auth.hmacSecret, auth.publicKey, auth.jwks or auth.jwksUrl, or auth.existingSecret with auth.existingSecretKeys" }}
{{- end }}
{{- toJson (dict "items" $items) }}
{{- end }}

{{/*
"true" when rumor serves HTTPS: tls.enabled (rumor.validate wants tls.existingSecret
with it), or extraEnv sets RUMOR_TLS_CERT and RUMOR_TLS_KEY, the way that predates the
tls values (rumor.validate refuses one without the other, and either next to
tls.enabled); else empty. rumor then serves only HTTPS on its HTTP port and its admin
port, so the probes and the ServiceMonitor must use https. TLS turned on through
extraEnvFrom cannot be seen here, like every variable there.
*/}}
{{- define "rumor.tls" -}}
{{- $names := list }}
{{- range .Values.extraEnv }}{{ $names = append $names .name }}{{ end }}
{{- if or .Values.tls.enabled (and (has "RUMOR_TLS_CERT" $names) (has "RUMOR_TLS_KEY" $names)) }}true{{ end }}
{{- end }}

{{/*
The name rumor verifies on the peers' certificates (RUMOR_PEER_TLS_SERVER_NAME) when
the UI's cluster view asks them over HTTPS at their advertised pod IPs, which a
certificate shared by all pods cannot name: tls.peerServerName, or with tls.enabled by
default the HTTP Service's DNS name, which a Certificate for the Service lists anyway.
TLS through extraEnv is set up by hand and gets only tls.peerServerName. Empty with TLS
off: rumor refuses the flag then (rumor.validate fails on tls.peerServerName).
*/}}
{{- define "rumor.peerTLSServerName" -}}
{{- if .Values.tls.enabled }}
{{- default (printf "%s.%s.svc" (include "rumor.fullname" .) .Release.Namespace) .Values.tls.peerServerName }}
{{- else if eq (include "rumor.tls" .) "true" }}
{{- .Values.tls.peerServerName }}
{{- end }}
{{- end }}

{{/*
Where the pod mounts tls.existingSecret (tls.enabled): a directory, so that the kubelet
swaps renewed files in and rumor loads them.
*/}}
{{- define "rumor.tlsDir" -}}
/etc/rumor/tls
{{- end }}

{{/*
Seconds between SIGTERM and SIGKILL: long enough for the preStop sleep and
rumor's whole drain.
*/}}
{{/*
Whether every client reaches the pods through a proxy the chart knows of: the Ingress or
the HTTPRoute. Then rumor sees the proxy's address, not the client's, unless
clients.trustedProxies lets it read X-Forwarded-For.
*/}}
{{- define "rumor.behindProxy" -}}
{{- if or .Values.ingress.enabled .Values.httpRoute.enabled }}true{{ end }}
{{- end }}

{{/*
--max-streams-per-client: clients.maxStreamsPerClient, or when null 100 where rumor can
tell clients apart and 0 (no per-client limit) behind the Ingress or HTTPRoute without
trusted proxies, where all clients would share one address.
*/}}
{{- define "rumor.maxStreamsPerClient" -}}
{{- $c := .Values.clients }}
{{- if not (kindIs "invalid" $c.maxStreamsPerClient) }}
{{- $c.maxStreamsPerClient | int64 }}
{{- else if and (include "rumor.behindProxy" .) (not $c.trustedProxies) }}0
{{- else }}100
{{- end }}
{{- end }}

{{/*
"true" when the `helm test` Pod is rendered (tests/check.yaml): tests.enabled, no TLS on
the pods, and with auth a way to a token (the chart's HMAC secret or tests.tokenSecret).
*/}}
{{- define "rumor.checkPod" -}}
{{- $hmac := false }}
{{- range (include "rumor.authItems" . | fromJson).items }}{{ if eq .path "hmac-secret" }}{{ $hmac = true }}{{ end }}{{ end }}
{{- $authOK := or (not .Values.auth.enabled) .Values.tests.tokenSecret.name $hmac }}
{{- if and .Values.tests.enabled $authOK (not (include "rumor.tls" .)) }}true{{ end }}
{{- end }}

{{- define "rumor.terminationGracePeriodSeconds" -}}
{{- $min := add (int .Values.preStopSleepSeconds) (int .Values.config.drainTimeoutSeconds) }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $min 5 }}
{{- else if le (int .Values.terminationGracePeriodSeconds) $min }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed preStopSleepSeconds + config.drainTimeoutSeconds (%d), or streams are killed mid-drain" (int .Values.terminationGracePeriodSeconds) $min) }}
{{- else }}
{{- int .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/*
A Go duration (time.ParseDuration: 1h30m, 500ms, 0) in nanoseconds, as a float: sprig
has no parser for it. Only for range checks of values the schema's pattern has let
through; the result is exact for whole numbers of any unit.
*/}}
{{- define "rumor.durationNanos" -}}
{{- $units := dict "ns" 1.0 "us" 1e3 "µs" 1e3 "ms" 1e6 "s" 1e9 "m" 6e10 "h" 3.6e12 }}
{{- $ns := 0.0 }}
{{- range regexFindAll `[0-9.]+(ns|us|µs|ms|s|m|h)` (toString .) -1 }}
{{- $num := regexFind `^[0-9.]+` . }}
{{- $ns = addf $ns (mulf (float64 $num) (get $units (trimPrefix $num .))) }}
{{- end }}
{{- $ns }}
{{- end }}

{{/*
Value combinations that `rumor serve` refuses at start (cmd/rumor's Validate), or that
would make the chart silently drop a value, caught here so that `helm install` fails
naming the values to fix instead of the pods crash-looping. Every problem is reported
at once. deployment.yaml includes it, so every render runs it. extraEnv is inspected by
variable name; extraEnvFrom cannot be, as its variables are only known in the pod.
*/}}
{{- define "rumor.validate" -}}
{{- $errs := list }}
{{- $extra := dict }}
{{- range .Values.extraEnv }}{{ $_ := set $extra .name true }}{{ end }}

{{- /* Auth: rumor takes exactly one key source (security.go, authenticator). */}}
{{- $a := .Values.auth }}
{{- $sources := list }}
{{- if $a.enabled }}
{{- range (include "rumor.authItems" . | fromJson).items }}
{{- $sources = append $sources (printf "%s (%s)" .value .env) }}
{{- end }}
{{- if $a.jwksUrl }}{{ $sources = append $sources "auth.jwksUrl (RUMOR_AUTH_JWKS_URL)" }}{{ end }}
{{- end }}
{{- range $name := list "RUMOR_AUTH_HMAC_SECRET" "RUMOR_AUTH_HMAC_SECRET_FILE" "RUMOR_AUTH_PUBLIC_KEY" "RUMOR_AUTH_JWKS" "RUMOR_AUTH_JWKS_URL" }}
{{- if hasKey $extra $name }}{{ $sources = append $sources (printf "extraEnv %s" $name) }}{{ end }}
{{- end }}
{{- if gt (len $sources) 1 }}
{{- $msg := printf "more than one auth key source is set: %s; rumor accepts exactly one (an HMAC secret, a public key, a JWKS or a JWKS URL) and would refuse to start: keep one and set the others to \"\"" (join ", " $sources) }}
{{- if and $a.enabled $a.existingSecret (eq $a.existingSecretKeys.hmacSecret "hmac-secret") }}
{{- $msg = printf "%s (auth.existingSecretKeys.hmacSecret defaults to \"hmac-secret\": set it to \"\" to use a public key, a JWKS or a JWKS URL)" $msg }}
{{- end }}
{{- $errs = append $errs $msg }}
{{- end }}
{{- if and $a.enabled $a.existingSecret }}
{{- range $k := list "hmacSecret" "publicKey" "jwks" }}
{{- if get $a $k }}
{{- $errs = append $errs (printf "auth.%s and auth.existingSecret are both set: with existingSecret the chart reads keys only from that Secret (auth.existingSecretKeys) and would ignore auth.%s; set one of them to \"\"" $k $k) }}
{{- end }}
{{- end }}
{{- else if and $a.enabled $a.hmacSecret }}
{{- /* rumor drops a trailing newline from the secret file, then wants 32 bytes. */}}
{{- $n := len (regexReplaceAll "[\r\n]+$" $a.hmacSecret "") }}
{{- if lt $n 32 }}
{{- $errs = append $errs (printf "auth.hmacSecret is %d bytes; rumor wants at least 32 for HS256 and would refuse to start: use e.g. `openssl rand -base64 32`" $n) }}
{{- end }}
{{- end }}
{{- /* Public channels: the chart passes them only with auth on, and rumor refuses them with auth off. */}}
{{- if and (not $a.enabled) $a.publicChannels }}
{{- $errs = append $errs "auth.publicChannels is set but auth.enabled is false: the chart passes it only with auth on, and rumor refuses --public-channels with auth off (every channel is open then); set auth.enabled=true with a key source, or auth.publicChannels to []" }}
{{- end }}

{{- /* Gossip: one key, from the chart's key file or from extraEnv, never both. */}}
{{- $g := .Values.gossip.encryption }}
{{- $gsources := list }}
{{- if $g.enabled }}
{{- if and $g.key $g.existingSecret }}
{{- $errs = append $errs "gossip.encryption.key and gossip.encryption.existingSecret are both set: the chart would mount existingSecret and ignore key; set one of them to \"\"" }}
{{- end }}
{{- $gsources = append $gsources "gossip.encryption.enabled (RUMOR_GOSSIP_KEY_FILE)" }}
{{- end }}
{{- range $name := list "RUMOR_GOSSIP_KEY" "RUMOR_GOSSIP_KEY_FILE" }}
{{- if hasKey $extra $name }}{{ $gsources = append $gsources (printf "extraEnv %s" $name) }}{{ end }}
{{- end }}
{{- if gt (len $gsources) 1 }}
{{- $errs = append $errs (printf "more than one gossip key source is set: %s; rumor refuses --gossip-key and --gossip-key-file together: set the key with gossip.encryption.key or gossip.encryption.existingSecret, or set gossip.encryption.enabled=false and keep one in extraEnv" (join ", " $gsources)) }}
{{- end }}

{{- /* TLS: from tls.* or from extraEnv (rumor.tls), never both; in extraEnv, both files or neither. */}}
{{- $t := .Values.tls }}
{{- $tlsEnv := list }}
{{- range $name := list "RUMOR_TLS_CERT" "RUMOR_TLS_KEY" }}
{{- if hasKey $extra $name }}{{ $tlsEnv = append $tlsEnv $name }}{{ end }}
{{- end }}
{{- if $t.enabled }}
{{- $tlsDir := include "rumor.tlsDir" . }}
{{- if not $t.existingSecret }}
{{- $errs = append $errs "tls.enabled needs tls.existingSecret: the name of a kubernetes.io/tls Secret with tls.crt and tls.key, such as the one a cert-manager Certificate makes" }}
{{- end }}
{{- if $tlsEnv }}
{{- $errs = append $errs (printf "tls.enabled and extraEnv %s both set the certificate, and the chart would set the variables twice: drop them from extraEnv (with the extraVolumes and extraVolumeMounts for their files), or set tls.enabled=false" (join ", " $tlsEnv)) }}
{{- end }}
{{- /* Left over from TLS through extraEnv, they would clash with the chart's own volume and mount. */}}
{{- range .Values.extraVolumes }}
{{- if eq (toString .name) "tls" }}
{{- $errs = append $errs "extraVolumes has a volume named tls, like the chart's volume of tls.existingSecret with tls.enabled: remove it, or rename it" }}
{{- end }}
{{- end }}
{{- range .Values.extraVolumeMounts }}
{{- if eq (trimSuffix "/" (toString .mountPath)) $tlsDir }}
{{- $errs = append $errs (printf "extraVolumeMounts mounts %s, where the chart mounts tls.existingSecret with tls.enabled: remove that mount, or move it" .mountPath) }}
{{- end }}
{{- end }}
{{- else if eq (len $tlsEnv) 1 }}
{{- $pair := list "RUMOR_TLS_CERT" "RUMOR_TLS_KEY" }}
{{- if hasKey $extra "RUMOR_TLS_KEY" }}{{ $pair = reverse $pair }}{{ end }}
{{- $errs = append $errs (printf "extraEnv sets %s without %s; rumor wants both (--tls-cert and --tls-key) or neither and would refuse to start" (index $pair 0) (index $pair 1)) }}
{{- end }}
{{- /* The peers' certificate name: rumor refuses it with TLS off; one source, the chart's or extraEnv's. */}}
{{- if not (include "rumor.tls" .) }}
{{- if $t.peerServerName }}
{{- $errs = append $errs "tls.peerServerName is set but TLS is off: the chart would drop it, and rumor refuses --peer-tls-server-name without TLS; set tls.enabled=true with tls.existingSecret, or tls.peerServerName to \"\"" }}
{{- end }}
{{- if hasKey $extra "RUMOR_PEER_TLS_SERVER_NAME" }}
{{- $errs = append $errs "extraEnv sets RUMOR_PEER_TLS_SERVER_NAME but TLS is off: rumor refuses --peer-tls-server-name without TLS and would not start; set tls.enabled=true with tls.existingSecret and drop the variable, or remove it" }}
{{- end }}
{{- else if and (include "rumor.peerTLSServerName" .) (hasKey $extra "RUMOR_PEER_TLS_SERVER_NAME") }}
{{- if $t.peerServerName }}
{{- $errs = append $errs "tls.peerServerName and extraEnv RUMOR_PEER_TLS_SERVER_NAME both set the name to verify on the peers' certificates, and the chart would set the variable twice: keep tls.peerServerName and drop the variable from extraEnv" }}
{{- else }}
{{- $errs = append $errs (printf "tls.enabled and extraEnv RUMOR_PEER_TLS_SERVER_NAME both set the name to verify on the peers' certificates (the chart sets %s by default), and the chart would set the variable twice: drop the variable from extraEnv, and set tls.peerServerName if the certificate carries another name" (include "rumor.peerTLSServerName" .)) }}
{{- end }}
{{- end }}

{{- /* Admin port: rumor refuses --admin-addr equal to --http-addr, and cannot listen where gossip does. */}}
{{- if hasKey $extra "RUMOR_ADMIN_ADDR" }}
{{- $errs = append $errs "extraEnv sets RUMOR_ADMIN_ADDR: the chart would neither expose nor scrape that port (or would set the variable twice); set admin.enabled=true and admin.port instead" }}
{{- end }}
{{- if .Values.admin.enabled }}
{{- $admin := int .Values.admin.port }}
{{- if eq $admin (int .Values.containerPorts.http) }}
{{- $errs = append $errs (printf "admin.port (%d) is containerPorts.http: rumor refuses --admin-addr equal to --http-addr and would not start; give admin.port another port" $admin) }}
{{- end }}
{{- if eq $admin (int .Values.gossip.port) }}
{{- $errs = append $errs (printf "admin.port (%d) is gossip.port, where rumor's gossip and relay listen over TCP: the two listeners would clash and rumor would not start; give admin.port another port" $admin) }}
{{- end }}
{{- end }}

{{- /* Per-client limits behind a proxy that hides the clients' addresses. */}}
{{- $c := .Values.clients }}
{{- $via := ternary "ingress.enabled" "httpRoute.enabled" (.Values.ingress.enabled | default false) }}
{{- if and (include "rumor.behindProxy" .) (not $c.trustedProxies) }}
{{- if and (not (kindIs "invalid" $c.maxStreamsPerClient)) (gt (int64 $c.maxStreamsPerClient) 0) }}
{{- $errs = append $errs (printf "clients.maxStreamsPerClient is %d with %s and no clients.trustedProxies: every client reaches rumor from the proxy's address, so all of them would share those %d streams per pod and the rest would be refused; set clients.trustedProxies to the proxy pods' CIDR (see KUBERNETES.md), or clients.maxStreamsPerClient to 0 or null" (int64 $c.maxStreamsPerClient) $via (int64 $c.maxStreamsPerClient)) }}
{{- end }}
{{- if and $c.publishRate (not .Values.auth.enabled) }}
{{- $errs = append $errs (printf "clients.publishRate is %s with %s, auth off and no clients.trustedProxies: without a token rumor counts publishes per client address, and every publisher would share the proxy's one budget; set clients.trustedProxies to the proxy pods' CIDR, or turn auth on (the rate is then per token)" $c.publishRate $via) }}
{{- end }}
{{- end }}
{{- range $name, $value := dict "RUMOR_MAX_STREAMS_PER_CLIENT" "clients.maxStreamsPerClient" "RUMOR_TRUSTED_PROXIES" "clients.trustedProxies" "RUMOR_PUBLISH_RATE" "clients.publishRate" }}
{{- if hasKey $extra $name }}
{{- $errs = append $errs (printf "extraEnv sets %s, which the chart sets from %s (the variable would be set twice): use %s instead" $name $value $value) }}
{{- end }}
{{- end }}

{{- /* Durations the schema's pattern lets through as zero; rumor wants them positive. */}}
{{- range $k, $flag := dict "historyTTL" "--history-ttl" "heartbeat" "--heartbeat" "rejoinInterval" "--rejoin-interval" }}
{{- $v := toString (get $.Values.config $k) }}
{{- if regexMatch `^(0+(\.0*)?(ns|us|µs|ms|s|m|h))+$` $v }}
{{- $errs = append $errs (printf "config.%s (%s) must be positive; rumor refuses a zero %s" $k $v $flag) }}
{{- end }}
{{- end }}

{{- /* Ranges rumor checks that a schema pattern cannot express (config.go, security.go). */}}
{{- $coalesce := toString .Values.config.coalesce }}
{{- if gt (float64 (include "rumor.durationNanos" $coalesce)) 1e9 }}
{{- $errs = append $errs (printf "config.coalesce (%s) must be at most 1s (0s turns coalescing off); rumor refuses a larger --coalesce" $coalesce) }}
{{- end }}
{{- $refresh := toString $a.jwksRefresh }}
{{- $refreshNs := float64 (include "rumor.durationNanos" $refresh) }}
{{- if or (lt $refreshNs 1e10) (gt $refreshNs 8.64e13) }}
{{- $errs = append $errs (printf "auth.jwksRefresh (%s) must be from 10s to 24h; rumor refuses --auth-jwks-refresh outside that range" $refresh) }}
{{- end }}

{{- if eq (len $errs) 1 }}
{{- fail (first $errs) }}
{{- else if $errs }}
{{- fail (printf "%d problems with the values:\n- %s" (len $errs) (join "\n- " $errs)) }}
{{- end }}
{{- end }}
