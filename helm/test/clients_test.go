package charttest

import (
	"strings"
	"testing"
)

const ingressOn = "ingress: {enabled: true, className: nginx}\n"

// TestClients: the per-client stream limit is on where rumor can tell
// clients apart and off behind the Ingress or HTTPRoute without trusted
// proxies, where every browser would share the controller's address.
func TestClients(t *testing.T) {
	for _, tc := range []struct {
		name, values  string
		perClient     string
		proxies, rate string // "" means the variable is absent
	}{
		{"defaults", "", "100", "", ""},
		{"ingress", ingressOn, "0", "", ""},
		{"httproute", "httpRoute: {enabled: true}\n", "0", "", ""},
		{"ingress, trusted proxies", ingressOn + "clients: {trustedProxies: [10.244.0.0/16, fd00::/64]}\n", "100", "10.244.0.0/16,fd00::/64", ""},
		{"ingress, proxies and a limit", ingressOn + "clients: {trustedProxies: [10.0.0.7], maxStreamsPerClient: 20}\n", "20", "10.0.0.7", ""},
		{"ingress, limit off", ingressOn + "clients: {maxStreamsPerClient: 0}\n", "0", "", ""},
		{"no proxy, own limit", "clients: {maxStreamsPerClient: 5, publishRate: 100/s}\n", "5", "", "100/s"},
		{"ingress, auth, rate per token", ingressOn + "auth: {enabled: true, jwksUrl: " + jwksURL + "}\nclients: {publishRate: 6000/m}\n", "0", "", "6000/m"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := env(t, container(t, mustRender(t, release{Values: tc.values}).deployment(t)))
			checkStartable(t, e)
			if got := e["RUMOR_MAX_STREAMS_PER_CLIENT"].Value; got != tc.perClient {
				t.Errorf("RUMOR_MAX_STREAMS_PER_CLIENT = %q, want %q", got, tc.perClient)
			}
			for name, want := range map[string]string{"RUMOR_TRUSTED_PROXIES": tc.proxies, "RUMOR_PUBLISH_RATE": tc.rate} {
				got, ok := e[name]
				if ok != (want != "") || got.Value != want {
					t.Errorf("%s = %q (set %v), want %q", name, got.Value, ok, want)
				}
			}
		})
	}
}

// TestClientsConflicts: limits that would count every client behind the
// proxy as one fail the render, naming the values and the way out.
func TestClientsConflicts(t *testing.T) {
	for _, tc := range []struct {
		name, values string
		want         []string
	}{
		{"ingress and a per-client limit", ingressOn + "clients: {maxStreamsPerClient: 100}\n",
			[]string{"clients.maxStreamsPerClient is 100 with ingress.enabled and no clients.trustedProxies", "set clients.trustedProxies"}},
		{"httproute and a per-client limit", "httpRoute: {enabled: true}\nclients: {maxStreamsPerClient: 3}\n",
			[]string{"with httpRoute.enabled", "clients.maxStreamsPerClient to 0 or null"}},
		{"ingress, auth off, a publish rate", ingressOn + "clients: {publishRate: 10/s}\n",
			[]string{"clients.publishRate is 10/s with ingress.enabled, auth off", "share the proxy's one budget"}},
		{"extraEnv per-client limit", "extraEnv: [{name: RUMOR_MAX_STREAMS_PER_CLIENT, value: '0'}]\n",
			[]string{"extraEnv sets RUMOR_MAX_STREAMS_PER_CLIENT", "use clients.maxStreamsPerClient"}},
		{"extraEnv trusted proxies", "extraEnv: [{name: RUMOR_TRUSTED_PROXIES, value: 10.0.0.0/8}]\n",
			[]string{"use clients.trustedProxies"}},
		{"not a CIDR", "clients: {trustedProxies: [ingress-nginx]}\n", []string{"trustedProxies"}},
		{"not a rate", "clients: {publishRate: fast}\n", []string{"publishRate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := renderRelease(t, release{Values: tc.values})
			if err == nil {
				t.Fatal("rendered, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not say %q", err, w)
				}
			}
		})
	}
}

// TestNotesPublic: with the Ingress on and auth off the install notes say
// plainly what is public and how to close it.
func TestNotesPublic(t *testing.T) {
	notes := func(values string) string {
		return mustRender(t, release{Values: values}).Files["rumor/templates/NOTES.txt"]
	}
	open := notes("ingress: {enabled: true, hosts: [{host: rumor.example.org, paths: [{path: /, pathType: Prefix}]}]}\n")
	for _, want := range []string{"WARNING: the Ingress makes rumor public and auth is off", "http://rumor.example.org can publish", "web UI", "/metrics are public", "auth.enabled=true", "admin.enabled=true", "per-client stream limit is 0 (off)"} {
		if !strings.Contains(open, want) {
			t.Errorf("NOTES with the Ingress on and auth off do not say %q:\n%s", want, open)
		}
	}
	if route := notes("httpRoute: {enabled: true}\nadmin: {enabled: true}\n"); !strings.Contains(route, "the HTTPRoute makes rumor public") || !strings.Contains(route, "stay on the admin port") {
		t.Errorf("NOTES with the HTTPRoute and the admin port:\n%s", route)
	}
	for _, values := range []string{"", ingressOn + "auth: {enabled: true, jwksUrl: " + jwksURL + "}\n"} {
		if n := notes(values); strings.Contains(n, "WARNING") {
			t.Errorf("NOTES with values %q warn:\n%s", values, n)
		}
	}
}
