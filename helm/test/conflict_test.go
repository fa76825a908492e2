package charttest

import (
	"maps"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// authKeyVars are rumor serve's auth key sources; it refuses to start with
// more than one (cmd/rumor/security.go, authenticator).
var authKeyVars = []string{"RUMOR_AUTH_HMAC_SECRET", "RUMOR_AUTH_HMAC_SECRET_FILE", "RUMOR_AUTH_PUBLIC_KEY", "RUMOR_AUTH_JWKS", "RUMOR_AUTH_JWKS_URL"}

// durationRanges are rumor serve's duration variables with a bounded range
// (cmd/rumor's Validate).
var durationRanges = map[string]struct{ min, max time.Duration }{
	"RUMOR_COALESCE":          {0, time.Second},
	"RUMOR_AUTH_JWKS_REFRESH": {10 * time.Second, 24 * time.Hour},
}

// checkStartable fails on a rendered environment that rumor serve's
// Validate would refuse for a combination of variables: the cases the
// chart's rumor.validate helper must catch at render time instead.
func checkStartable(tb testing.TB, e map[string]corev1.EnvVar) {
	tb.Helper()
	var auth []string
	for _, name := range authKeyVars {
		if _, ok := e[name]; ok {
			auth = append(auth, name)
		}
	}
	if len(auth) > 1 {
		tb.Errorf("env sets auth key sources %v: rumor accepts exactly one", auth)
	}
	_, key := e["RUMOR_GOSSIP_KEY"]
	_, keyFile := e["RUMOR_GOSSIP_KEY_FILE"]
	if key && keyFile {
		tb.Error("env sets RUMOR_GOSSIP_KEY and RUMOR_GOSSIP_KEY_FILE: rumor refuses both")
	}
	_, cert := e["RUMOR_TLS_CERT"]
	_, tlsKey := e["RUMOR_TLS_KEY"]
	if cert != tlsKey {
		tb.Errorf("env sets RUMOR_TLS_CERT (%v) and RUMOR_TLS_KEY (%v): rumor wants both or neither", cert, tlsKey)
	}
	if _, ok := e["RUMOR_PEER_TLS_SERVER_NAME"]; ok && !(cert && tlsKey) {
		tb.Error("env sets RUMOR_PEER_TLS_SERVER_NAME without RUMOR_TLS_CERT and RUMOR_TLS_KEY: rumor refuses it with TLS off")
	}
	if _, ok := e["RUMOR_PUBLIC_CHANNELS"]; ok && len(auth) == 0 {
		tb.Error("env sets RUMOR_PUBLIC_CHANNELS without an auth key source: rumor refuses public channels with auth off")
	}
	if v, ok := e["RUMOR_ACK"]; ok && v.Value != "peer" && v.Value != "local" {
		tb.Errorf("RUMOR_ACK = %q, want peer or local", v.Value)
	}
	for _, name := range slices.Sorted(maps.Keys(durationRanges)) {
		v, ok := e[name]
		if !ok {
			continue
		}
		r := durationRanges[name]
		if d, err := time.ParseDuration(v.Value); err != nil || d < r.min || d > r.max {
			tb.Errorf("%s = %q, want a duration from %v to %v", name, v.Value, r.min, r.max)
		}
	}
	if v, ok := e["RUMOR_AUTH_JWKS_URL"]; ok && !jwksURLOK(v.Value) {
		tb.Errorf("RUMOR_AUTH_JWKS_URL = %q, want https://HOST/PATH (http only on loopback)", v.Value)
	}
}

// jwksURLOK is web's checkJWKSURL: https, or http on loopback only.
func jwksURLOK(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return false
	}
	switch u.Scheme {
	case "https":
		return true
	case "http":
		ip := net.ParseIP(u.Hostname())
		return u.Hostname() == "localhost" || ip != nil && ip.IsLoopback()
	}
	return false
}

// jwksURL is an identity provider's jwks_uri.
const jwksURL = "https://idp.example.com/.well-known/jwks.json"

// TestConflictingValues: value combinations that rumor serve refuses at
// start fail the render instead, with a message that names the values
// and says how to fix them.
func TestConflictingValues(t *testing.T) {
	const hmac = "0123456789abcdef0123456789abcdef"
	const pem = `
    -----BEGIN PUBLIC KEY-----
    MCowBQYDK2VwAyEAD/wvE71VLoYWMpfM9KIGpbg5g+rYXzzBQpTPeOTav4k=
    -----END PUBLIC KEY-----`
	cases := []struct {
		name   string
		values string
		want   []string // all must appear in the error
		not    []string // none may appear in it
	}{
		{
			name:   "hmac and public key",
			values: "auth:\n  enabled: true\n  hmacSecret: " + hmac + "\n  publicKey: |" + pem,
			want:   []string{"more than one auth key source", "auth.hmacSecret (RUMOR_AUTH_HMAC_SECRET_FILE)", "auth.publicKey (RUMOR_AUTH_PUBLIC_KEY)", "exactly one", `set the others to ""`},
		},
		{
			name:   "public key and jwks",
			values: "auth:\n  enabled: true\n  jwks: '{\"keys\":[]}'\n  publicKey: |" + pem,
			want:   []string{"auth.publicKey (RUMOR_AUTH_PUBLIC_KEY)", "auth.jwks (RUMOR_AUTH_JWKS)"},
		},
		{
			name:   "all three inline",
			values: "auth:\n  enabled: true\n  hmacSecret: " + hmac + "\n  jwks: '{\"keys\":[]}'\n  publicKey: |" + pem,
			want:   []string{"auth.hmacSecret", "auth.publicKey", "auth.jwks"},
		},
		{
			// The trap: existingSecretKeys.hmacSecret has a default.
			name:   "existing secret, public key next to the default hmac key",
			values: "auth:\n  enabled: true\n  existingSecret: keys\n  existingSecretKeys: {publicKey: key.pem}",
			want:   []string{"auth.existingSecretKeys.hmacSecret (RUMOR_AUTH_HMAC_SECRET_FILE)", "auth.existingSecretKeys.publicKey (RUMOR_AUTH_PUBLIC_KEY)", `defaults to "hmac-secret": set it to ""`},
		},
		{
			name:   "existing secret, public key and jwks",
			values: "auth:\n  enabled: true\n  existingSecret: keys\n  existingSecretKeys: {hmacSecret: '', publicKey: key.pem, jwks: jwks.json}",
			want:   []string{"auth.existingSecretKeys.publicKey", "auth.existingSecretKeys.jwks"},
		},
		{
			name:   "existing secret and inline key",
			values: "auth:\n  enabled: true\n  existingSecret: keys\n  jwks: '{\"keys\":[]}'",
			want:   []string{"auth.jwks and auth.existingSecret are both set", "would ignore auth.jwks"},
		},
		{
			name:   "jwks url and hmac secret",
			values: "auth:\n  enabled: true\n  hmacSecret: " + hmac + "\n  jwksUrl: " + jwksURL,
			want:   []string{"more than one auth key source", "auth.hmacSecret (RUMOR_AUTH_HMAC_SECRET_FILE)", "auth.jwksUrl (RUMOR_AUTH_JWKS_URL)", "a JWKS URL", `set the others to ""`},
		},
		{
			// The trap again: the default hmac key next to a URL.
			name:   "existing secret default hmac key and jwks url",
			values: "auth:\n  enabled: true\n  existingSecret: keys\n  jwksUrl: " + jwksURL,
			want:   []string{"auth.existingSecretKeys.hmacSecret (RUMOR_AUTH_HMAC_SECRET_FILE)", "auth.jwksUrl (RUMOR_AUTH_JWKS_URL)", `set it to "" to use a public key, a JWKS or a JWKS URL`},
		},
		{
			name:   "extraEnv jwks url next to the chart's key",
			values: "auth:\n  enabled: true\n  jwks: '{\"keys\":[]}'\nextraEnv: [{name: RUMOR_AUTH_JWKS_URL, value: " + jwksURL + "}]",
			want:   []string{"auth.jwks (RUMOR_AUTH_JWKS)", "extraEnv RUMOR_AUTH_JWKS_URL"},
		},
		{
			name:   "plain http jwks url",
			values: "auth:\n  enabled: true\n  jwksUrl: http://idp.example.com/jwks.json",
			want:   []string{"auth/jwksUrl", "does not match pattern"},
		},
		{
			name:   "jwks url with credentials",
			values: "auth:\n  enabled: true\n  jwksUrl: https://user:pw@idp.example.com/jwks.json",
			want:   []string{"auth/jwksUrl", "does not match pattern"},
		},
		{
			name:   "jwks refresh too short",
			values: "auth:\n  enabled: true\n  jwksUrl: " + jwksURL + "\n  jwksRefresh: 1s",
			want:   []string{"auth.jwksRefresh (1s) must be from 10s to 24h", "--auth-jwks-refresh"},
		},
		{
			name:   "jwks refresh too long",
			values: "auth:\n  jwksRefresh: 24h0m0.001s",
			want:   []string{"auth.jwksRefresh (24h0m0.001s) must be from 10s to 24h"},
		},
		{
			name:   "jwks refresh not a duration",
			values: "auth:\n  jwksRefresh: 5 minutes",
			want:   []string{"auth/jwksRefresh", "does not match pattern"},
		},
		{
			name:   "coalesce too long",
			values: "config:\n  coalesce: 2s",
			want:   []string{"config.coalesce (2s) must be at most 1s", "--coalesce"},
		},
		{
			name:   "coalesce just over a second",
			values: "config:\n  coalesce: 1000001us",
			want:   []string{"config.coalesce (1000001us) must be at most 1s"},
		},
		{
			name:   "coalesce not a duration",
			values: "config:\n  coalesce: 5",
			want:   []string{"config/coalesce"},
		},
		{
			name:   "extraEnv key next to the chart's",
			values: "auth:\n  enabled: true\n  hmacSecret: " + hmac + "\nextraEnv: [{name: RUMOR_AUTH_JWKS, value: /keys/jwks.json}]",
			want:   []string{"auth.hmacSecret (RUMOR_AUTH_HMAC_SECRET_FILE)", "extraEnv RUMOR_AUTH_JWKS"},
		},
		{
			name:   "two extraEnv keys, auth off",
			values: "extraEnv: [{name: RUMOR_AUTH_HMAC_SECRET, value: x}, {name: RUMOR_AUTH_PUBLIC_KEY, value: /k.pem}]",
			want:   []string{"extraEnv RUMOR_AUTH_HMAC_SECRET", "extraEnv RUMOR_AUTH_PUBLIC_KEY"},
		},
		{
			name:   "short hmac secret",
			values: "auth:\n  enabled: true\n  hmacSecret: s3cret\n",
			want:   []string{"auth.hmacSecret is 6 bytes", "at least 32"},
		},
		{
			name:   "gossip key and existing secret",
			values: "gossip:\n  encryption:\n    key: " + customKey + "\n    existingSecret: shared",
			want:   []string{"gossip.encryption.key and gossip.encryption.existingSecret are both set"},
		},
		{
			name:   "gossip key in extraEnv next to the key file",
			values: "extraEnv: [{name: RUMOR_GOSSIP_KEY, value: " + customKey + "}]",
			want:   []string{"gossip.encryption.enabled (RUMOR_GOSSIP_KEY_FILE)", "extraEnv RUMOR_GOSSIP_KEY", "gossip.encryption.enabled=false"},
		},
		{
			name:   "tls cert without key",
			values: "extraEnv: [{name: RUMOR_TLS_CERT, value: /tls/tls.crt}]",
			want:   []string{"extraEnv sets RUMOR_TLS_CERT without RUMOR_TLS_KEY", "both"},
		},
		{
			name:   "tls key without cert",
			values: "extraEnv: [{name: RUMOR_TLS_KEY, value: /tls/tls.key}]",
			want:   []string{"extraEnv sets RUMOR_TLS_KEY without RUMOR_TLS_CERT"},
		},
		{
			name:   "tls values without a secret",
			values: "tls: {enabled: true}",
			want:   []string{"tls.enabled needs tls.existingSecret", "kubernetes.io/tls"},
		},
		{
			// Two sources of the certificate: the chart's and extraEnv's.
			name:   "tls values and tls in extraEnv",
			values: tlsSecretValues + tlsValues,
			want:   []string{"tls.enabled and extraEnv RUMOR_TLS_CERT, RUMOR_TLS_KEY both set the certificate", "tls.enabled=false"},
		},
		{
			// One of the pair is enough to clash; that the other is missing is no extra problem.
			name:   "tls values and a key in extraEnv",
			values: tlsSecretValues + "extraEnv: [{name: RUMOR_TLS_KEY, value: /tls/tls.key}]",
			want:   []string{"tls.enabled and extraEnv RUMOR_TLS_KEY both set the certificate"},
			not:    []string{"without RUMOR_TLS_CERT", "problems"},
		},
		{
			// Left over from TLS through extraEnv: the chart's volume and mount would clash with them.
			name:   "tls values and the old volume",
			values: tlsSecretValues + "extraVolumes: [{name: tls, secret: {secretName: rumor-tls}}]\nextraVolumeMounts: [{name: tls, mountPath: /etc/rumor/tls/}]",
			want:   []string{"2 problems", "extraVolumes has a volume named tls", "extraVolumeMounts mounts /etc/rumor/tls/", "tls.enabled"},
		},
		{
			// rumor refuses --peer-tls-server-name with TLS off; the chart would drop it.
			name:   "peer server name with tls off",
			values: "tls: {peerServerName: rumor.streams.svc}",
			want:   []string{"tls.peerServerName is set but TLS is off", "--peer-tls-server-name", "tls.enabled=true", `tls.peerServerName to ""`},
		},
		{
			name:   "peer server name with tls off, secret left in",
			values: "tls: {existingSecret: rumor-tls, peerServerName: rumor.streams.svc}",
			want:   []string{"tls.peerServerName is set but TLS is off"},
		},
		{
			name:   "peer server name in extraEnv with tls off",
			values: "extraEnv: [{name: RUMOR_PEER_TLS_SERVER_NAME, value: rumor.streams.svc}]",
			want:   []string{"extraEnv sets RUMOR_PEER_TLS_SERVER_NAME but TLS is off", "--peer-tls-server-name"},
		},
		{
			// Two sources: the chart sets it by default with tls.enabled.
			name:   "tls values and peer server name in extraEnv",
			values: tlsSecretValues + "extraEnv: [{name: RUMOR_PEER_TLS_SERVER_NAME, value: rumor.streams.svc}]",
			want:   []string{"tls.enabled and extraEnv RUMOR_PEER_TLS_SERVER_NAME both set", "tls.peerServerName"},
		},
		{
			name:   "peer server name in values and in extraEnv",
			values: tlsPeerValues + "tls: {peerServerName: rumor.streams.svc}",
			want:   []string{"tls.peerServerName and extraEnv RUMOR_PEER_TLS_SERVER_NAME both set"},
			not:    []string{"problems"},
		},
		{
			name:   "zero heartbeat",
			values: "config:\n  heartbeat: 0s",
			want:   []string{"config.heartbeat (0s) must be positive", "--heartbeat"},
		},
		{
			name:   "zero rejoin interval",
			values: "config:\n  rejoinInterval: 0m0.0s",
			want:   []string{"config.rejoinInterval (0m0.0s) must be positive"},
		},
		{
			name:   "invalid ack",
			values: "config:\n  ack: always",
			want:   []string{"config/ack", "'peer', 'local'"},
		},
		{
			name:   "history bytes in MB",
			values: "config:\n  historyBytes: 256MB",
			want:   []string{"config/historyBytes", "does not match pattern"},
		},
		{
			name:   "zero history bytes",
			values: "config:\n  historyBytes: 0",
			want:   []string{"config/historyBytes", "minimum"},
		},
		{
			// rumor refuses --public-channels with auth off; the chart dropped it.
			name:   "public channels with auth off",
			values: "auth:\n  publicChannels: [news]",
			want:   []string{"auth.publicChannels is set but auth.enabled is false", "--public-channels", "auth.publicChannels to []"},
		},
		{
			name:   "cors origin without scheme",
			values: "auth:\n  enabled: true\n  hmacSecret: " + hmac + "\n  corsOrigins: [app.example.com]",
			want:   []string{"corsOrigins/0", "does not match pattern"},
		},
		{
			// rumor refuses --admin-addr equal to --http-addr.
			name:   "admin port is the http port",
			values: "admin: {enabled: true, port: 8080}",
			want:   []string{"admin.port (8080) is containerPorts.http", "--admin-addr", "give admin.port another port"},
		},
		{
			name:   "http port moved onto the admin default",
			values: "admin: {enabled: true}\ncontainerPorts: {http: 9090}",
			want:   []string{"admin.port (9090) is containerPorts.http"},
		},
		{
			name:   "admin port is the gossip port",
			values: "admin: {enabled: true, port: 7000}\ngossip: {port: 7000}",
			want:   []string{"admin.port (7000) is gossip.port", "give admin.port another port"},
		},
		{
			name:   "admin address in extraEnv",
			values: "extraEnv: [{name: RUMOR_ADMIN_ADDR, value: ':9090'}]",
			want:   []string{"extraEnv sets RUMOR_ADMIN_ADDR", "admin.enabled=true and admin.port"},
		},
		{
			name:   "every problem at once",
			values: "auth:\n  enabled: true\n  hmacSecret: " + hmac + "\n  jwks: '{}'\nconfig:\n  heartbeat: 0s",
			want:   []string{"2 problems", "auth.hmacSecret", "auth.jwks", "config.heartbeat"},
		},
		{
			name:   "every range problem at once",
			values: "auth:\n  jwksRefresh: 25h\nconfig:\n  coalesce: 1.5s",
			want:   []string{"2 problems", "auth.jwksRefresh (25h)", "config.coalesce (1.5s)"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := renderRelease(t, release{Values: tc.values})
			if err == nil {
				t.Fatalf("values %q: rendered without error", tc.values)
			}
			t.Logf("%v", err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(err.Error(), w) {
					t.Errorf("error %q says %q", err, w)
				}
			}
			for _, secret := range []string{hmac, "s3cret", customKey} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q echoes a secret", err)
				}
			}
		})
	}
}

// TestGoodCombinations: every accepted way to give rumor its keys renders,
// and renders an environment rumor serve would start with. The value sets
// of the other tests are included, so a check that is too eager fails here
// by name.
func TestGoodCombinations(t *testing.T) {
	good := map[string]string{
		"auth hmac":                    "auth: {enabled: true, hmacSecret: \"0123456789abcdef0123456789abcdef\\n\"}",
		"auth jwks":                    `auth: {enabled: true, jwks: '{"keys":[]}'}`,
		"auth public key":              "auth: {enabled: true, publicKey: pem}",
		"existing secret, hmac":        "auth: {enabled: true, existingSecret: keys}",
		"existing secret, public key":  "auth: {enabled: true, existingSecret: keys, existingSecretKeys: {hmacSecret: '', publicKey: key.pem}}",
		"existing secret, jwks":        "auth: {enabled: true, existingSecret: keys, existingSecretKeys: {hmacSecret: '', jwks: jwks.json}}",
		"auth off, keys left in":       "auth: {hmacSecret: short, publicKey: pem, jwks: '{}'}",
		"auth off, extraEnv key":       "extraEnv: [{name: RUMOR_AUTH_HMAC_SECRET_FILE, value: /keys/hmac}]",
		"gossip key":                   "gossip: {encryption: {key: " + customKey + "}}",
		"gossip existing secret":       "gossip: {encryption: {existingSecret: shared}}",
		"gossip off, extraEnv key":     "gossip: {encryption: {enabled: false}}\nextraEnv: [{name: RUMOR_GOSSIP_KEY, value: " + customKey + "}]",
		"tls cert and key":             "extraEnv: [{name: RUMOR_TLS_CERT, value: /tls/tls.crt}, {name: RUMOR_TLS_KEY, value: /tls/tls.key}]",
		"tls off, secret left in":      "tls: {existingSecret: rumor-tls}",
		"tls off, extraEnv tls":        "tls: {existingSecret: rumor-tls}\n" + tlsValues,
		"tls values, other volumes":    tlsSecretValues + "extraVolumes: [{name: ca, configMap: {name: corp-ca}}]\nextraVolumeMounts: [{name: ca, mountPath: /etc/rumor/ca, readOnly: true}]",
		"ack local":                    "config: {ack: local}",
		"durations":                    "config: {heartbeat: 500ms, historyTTL: 1h30m, rejoinInterval: 0m10s}",
		"history bytes integer":        "config: {historyBytes: 1048576}",
		"history bytes KiB":            "config: {historyBytes: 512kib}",
		"cors origins":                 `auth: {enabled: true, jwks: '{}', corsOrigins: ["*", "http://localhost:3000", "https://app.example.com/"]}`,
		"cors origins, auth off":       `auth: {corsOrigins: ["https://app.example.com"]}`,
		"auth jwks url":                "auth: {enabled: true, jwksUrl: " + jwksURL + "}",
		"jwks url with port and query": "auth: {enabled: true, jwksUrl: 'https://idp.example.com:8443/keys?tenant=a'}",
		"jwks refresh bounds":          "auth: {enabled: true, jwksUrl: " + jwksURL + ", jwksRefresh: 10s}",
		"jwks refresh a day":           "auth: {enabled: true, jwksUrl: " + jwksURL + ", jwksRefresh: 23h60m}",
		"existing secret, jwks url":    "auth: {enabled: true, existingSecret: keys, existingSecretKeys: {hmacSecret: ''}, jwksUrl: " + jwksURL + "}",
		"auth off, extraEnv jwks url":  "extraEnv: [{name: RUMOR_AUTH_JWKS_URL, value: " + jwksURL + "}]",
		"coalesce off":                 "config: {coalesce: 0s}",
		"coalesce bare zero":           "config: {coalesce: '0'}",
		"coalesce integer zero":        "config: {coalesce: 0}",
		"coalesce a second":            "config: {coalesce: 1000ms}",
		"coalesce fractional":          "config: {coalesce: 0.5s}",
		"admin off, port at http's":    "admin: {port: 8080}",
		"tls values, peer name":        tlsSecretValues + "  peerServerName: rumor.corp.internal\n",
		"tls values, peer name empty":  tlsSecretValues + "  peerServerName: \"\"\n",
		"extraEnv tls, peer name":      tlsValues + "tls: {peerServerName: rumor.corp.internal}\n",
		"extraEnv tls and peer name":   tlsPeerValues,
		"admin on, own port":           "admin: {enabled: true, port: 8081}",
	}
	for _, vs := range valueSets {
		good["value set "+vs.name] = vs.rel.Values
	}
	for _, name := range slices.Sorted(maps.Keys(good)) {
		t.Run(name, func(t *testing.T) {
			r := mustRender(t, release{Values: good[name]})
			checkStartable(t, env(t, container(t, r.deployment(t))))
		})
	}
}
