package charttest

import (
	"strings"
	"testing"
)

// TestMercure: mercure.* becomes rumor's --mercure* variables, the keys come
// from the named Secret as files (so rotation needs no restart), and
// settings rumor would refuse fail the render.
func TestMercure(t *testing.T) {
	e := env(t, container(t, mustRender(t, release{}).deployment(t)))
	for name := range e {
		if strings.HasPrefix(name, "RUMOR_MERCURE") {
			t.Errorf("Mercure off sets %s", name)
		}
	}
	d := mustRender(t, release{Values: "mercure: {enabled: true, existingSecret: mercure-keys, subscriptions: true, audience: 'https://hub.example.com/.well-known/mercure', corsOrigins: ['https://app.example.com']}\n"}).deployment(t)
	c := container(t, d)
	e = env(t, c)
	checkStartable(t, e)
	for name, want := range map[string]string{
		"RUMOR_MERCURE":                     "true",
		"RUMOR_MERCURE_PUBLISHER_KEY_FILE":  "/etc/rumor/mercure/publisher-key",
		"RUMOR_MERCURE_SUBSCRIBER_KEY_FILE": "/etc/rumor/mercure/subscriber-key",
		"RUMOR_MERCURE_ANONYMOUS":           "false",
		"RUMOR_MERCURE_SUBSCRIPTIONS":       "true",
		"RUMOR_MERCURE_TOKENS":              "0.x,1.0",
		"RUMOR_MERCURE_COOKIE":              "mercureAuthorization",
		"RUMOR_MERCURE_AUDIENCE":            "https://hub.example.com/.well-known/mercure",
		"RUMOR_MERCURE_CORS_ORIGINS":        "https://app.example.com",
	} {
		if got := e[name].Value; got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	var mounted bool
	for _, m := range c.VolumeMounts {
		if m.MountPath == "/etc/rumor/mercure" && m.SubPath == "" && m.ReadOnly {
			mounted = true
		}
	}
	var secret bool
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName == "mercure-keys" && len(v.Secret.Items) == 2 {
			secret = true
		}
	}
	if !mounted || !secret {
		t.Errorf("the Mercure keys are not mounted from mercure-keys as a directory (mount %v, volume %v)", mounted, secret)
	}

	for _, tc := range []struct{ values, want string }{
		{"mercure: {enabled: true}\n", "mercure.existingSecret"},
		{"mercure: {enabled: true, existingSecret: k, subscriberKey: ''}\n", "mercure.anonymous"},
		{"mercure: {enabled: true, existingSecret: k, tokens: ['2.0']}\n", "tokens"},
	} {
		if _, err := renderRelease(t, release{Values: tc.values}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("values %q: %v, want an error naming %s", tc.values, err, tc.want)
		}
	}
	e = env(t, container(t, mustRender(t, release{Values: "mercure: {enabled: true, existingSecret: k, subscriberKey: '', anonymous: true}\n"}).deployment(t)))
	if _, ok := e["RUMOR_MERCURE_SUBSCRIBER_KEY_FILE"]; ok || e["RUMOR_MERCURE_ANONYMOUS"].Value != "true" {
		t.Errorf("anonymous without a subscriber key: %v", e)
	}
}
