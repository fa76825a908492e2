package charttest

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestHelmTestPod: the `helm test` hook runs `rumor check` with the chart's
// image against the Service that serves /cluster, without the labels that
// would make the Services or the PodDisruptionBudget count it as a node.
func TestHelmTestPod(t *testing.T) {
	for _, tc := range []struct {
		name, values string
		server       string
		min          string
	}{
		{"defaults", "", "--server=http://rumor.streams.svc:80", "--min-members=3"},
		{"admin port", "admin: {enabled: true}\nreplicaCount: 5\n", "--server=http://rumor-admin.streams.svc:9090", "--min-members=5"},
		{"autoscaling", "autoscaling: {enabled: true, minReplicas: 2}\nservice: {port: 8000}\n", "--server=http://rumor.streams.svc:8000", "--min-members=2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRender(t, release{Values: tc.values})
			p := one[*corev1.Pod](t, r, "Pod")
			d := r.deployment(t)
			if p.Annotations["helm.sh/hook"] != "test" || p.Spec.RestartPolicy != corev1.RestartPolicyNever {
				t.Errorf("Pod %s: hook %q, restartPolicy %q; want a test hook that is not restarted", p.Name, p.Annotations["helm.sh/hook"], p.Spec.RestartPolicy)
			}
			c := p.Spec.Containers[0]
			if c.Image != container(t, d).Image {
				t.Errorf("test image %q, want the nodes' %q", c.Image, container(t, d).Image)
			}
			if len(c.Args) == 0 || c.Args[0] != "check" || !slices.Contains(c.Args, tc.server) || !slices.Contains(c.Args, tc.min) {
				t.Errorf("test args %q, want check with %s and %s", c.Args, tc.server, tc.min)
			}
			sel := d.Spec.Selector.MatchLabels
			matches := true
			for k, v := range sel {
				matches = matches && p.Labels[k] == v
			}
			if matches {
				t.Errorf("test Pod labels %v match the nodes' selector %v: Services and the PDB would count it", p.Labels, sel)
			}
			if sc := c.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("test container security context %+v, want the nodes' (non-root, read-only)", sc)
			}
		})
	}
	// With auth: a token signed with the chart's HMAC secret, or one from a Secret.
	for _, tc := range []struct{ name, values, arg, secret, key string }{
		{"hmac", "auth: {enabled: true, hmacSecret: \"0123456789abcdef0123456789abcdef\"}", "--hmac-secret-file=/etc/rumor/check/hmac-secret", "rumor-auth", "hmac-secret"},
		{"existing hmac", "auth: {enabled: true, existingSecret: keys}", "--hmac-secret-file=/etc/rumor/check/hmac-secret", "keys", "hmac-secret"},
		{"token secret", "auth: {enabled: true, jwksUrl: " + jwksURL + "}\ntests: {tokenSecret: {name: check-token}}", "--token-file=/etc/rumor/check/token", "check-token", "token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := one[*corev1.Pod](t, mustRender(t, release{Values: tc.values}), "Pod")
			c := p.Spec.Containers[0]
			if !slices.Contains(c.Args, tc.arg) || len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != "/etc/rumor/check" {
				t.Errorf("args %q, mounts %+v; want %s from /etc/rumor/check", c.Args, c.VolumeMounts, tc.arg)
			}
			if v := p.Spec.Volumes; len(v) != 1 || v[0].Secret == nil || v[0].Secret.SecretName != tc.secret || len(v[0].Secret.Items) != 1 || v[0].Secret.Items[0].Key != tc.key {
				t.Errorf("volumes %+v, want Secret %s key %s", v, tc.secret, tc.key)
			}
		})
	}
	if notes := mustRender(t, release{}).Files["rumor/templates/NOTES.txt"]; !strings.Contains(notes, "helm test rumor -n streams --logs") {
		t.Errorf("NOTES.txt does not say how to run the test:\n%s", notes)
	}
	for name, values := range map[string]string{
		"tests off":               "tests: {enabled: false}",
		"auth on, no way to sign": "auth: {enabled: true, jwksUrl: " + jwksURL + "}",
		"tls on":                  tlsSecretValues,
	} {
		r := mustRender(t, release{Values: values})
		if pods := r.all("Pod"); len(pods) != 0 {
			t.Errorf("%s: rendered %d test Pods, want none", name, len(pods))
		}
		if strings.Contains(r.Files["rumor/templates/NOTES.txt"], "helm test") {
			t.Errorf("%s: NOTES.txt mentions helm test without a test Pod", name)
		}
	}
}
