package charttest

import (
	"fmt"
	"maps"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// TestAdmin: admin.enabled gives rumor an admin listener (--admin-addr),
// where the UI, /metrics and the views that list channels and members move,
// so that they stay off the public port. The chart then sets
// RUMOR_ADMIN_ADDR, names the container port admin, exposes it through a
// ClusterIP Service of its own and never through the HTTP Service, the
// Ingress or the HTTPRoute, scrapes it, and tells in NOTES.txt how to reach
// the UI. Without admin.enabled none of that is rendered.
func TestAdmin(t *testing.T) {
	// Everything that could carry the admin port to the outside is on.
	const public = `
service: {type: LoadBalancer}
ingress: {enabled: true}
httpRoute: {enabled: true}
serviceMonitor: {enabled: true}
`
	for _, tc := range []struct {
		name, values string
		port         int32  // the admin port; 0 means no admin listener
		scheme       string // of the scrape and the UI
	}{
		{"off", public, 0, "http"},
		{"off, port left at the HTTP port's", public + "admin: {port: 8080}\n", 0, "http"},
		{"on", public + "admin: {enabled: true}\n", 9090, "http"},
		{"on, own port", public + "admin: {enabled: true, port: 9443}\n", 9443, "http"},
		{"on, tls", tlsValues + public + "admin: {enabled: true}\n", 9090, "https"},
		{"on, tls values", tlsSecretValues + public + "admin: {enabled: true}\n", 9090, "https"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRender(t, release{Values: tc.values})
			d := r.deployment(t)
			c := container(t, d)
			e := env(t, c)
			httpSvc, _, adminSvc := r.services(t)
			sm := one[*monitoringv1.ServiceMonitor](t, r, "ServiceMonitor")
			notes := r.Files["rumor/templates/NOTES.txt"]

			for _, sp := range httpSvc.Spec.Ports {
				if sp.Name != "http" || sp.TargetPort.String() != "http" {
					t.Errorf("HTTP Service port %s → %s, want only http → http", sp.Name, sp.TargetPort.String())
				}
			}
			for kind, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
				if p == nil || p.HTTPGet == nil || p.HTTPGet.Port.String() != "http" {
					t.Errorf("%s probe %+v, want it on port http", kind, p)
				}
			}
			for _, o := range r.all("Ingress") {
				for _, rule := range o.Obj.(*networkingv1.Ingress).Spec.Rules {
					for _, p := range rule.HTTP.Paths {
						if b := p.Backend.Service; b == nil || b.Name != httpSvc.Name {
							t.Errorf("Ingress path %s goes to %+v, want Service %s", p.Path, b, httpSvc.Name)
						}
					}
				}
			}
			for _, o := range r.all("HTTPRoute") {
				for _, rule := range o.Obj.(*gatewayv1.HTTPRoute).Spec.Rules {
					for _, b := range rule.BackendRefs {
						if string(b.Name) != httpSvc.Name {
							t.Errorf("HTTPRoute goes to %s, want Service %s", b.Name, httpSvc.Name)
						}
					}
				}
			}
			if len(sm.Spec.Endpoints) != 1 {
				t.Fatalf("ServiceMonitor endpoints %v, want one", sm.Spec.Endpoints)
			}
			ep := sm.Spec.Endpoints[0]
			if got := ep.Scheme.String(); got != tc.scheme {
				t.Errorf("ServiceMonitor scheme %q, want %q", got, tc.scheme)
			}

			if tc.port == 0 {
				if v, ok := e["RUMOR_ADMIN_ADDR"]; ok {
					t.Errorf("RUMOR_ADMIN_ADDR = %q with admin off", v.Value)
				}
				if cp := containerPort(c, "admin"); cp != nil {
					t.Errorf("container port admin %+v with admin off", cp)
				}
				if adminSvc != nil {
					t.Errorf("admin Service %s rendered with admin off", adminSvc.Name)
				}
				if ep.Port != "http" || !selects(sm.Spec.Selector.MatchLabels, httpSvc.Labels) {
					t.Errorf("ServiceMonitor scrapes port %q of Services %v, want http of %s", ep.Port, sm.Spec.Selector.MatchLabels, httpSvc.Name)
				}
				if strings.Contains(notes, "rumor-admin") {
					t.Errorf("NOTES.txt mentions the admin port with admin off:\n%s", notes)
				}
				return
			}

			if got, want := e["RUMOR_ADMIN_ADDR"].Value, fmt.Sprintf(":%d", tc.port); got != want {
				t.Errorf("RUMOR_ADMIN_ADDR = %q, want %q", got, want)
			}
			if cp := containerPort(c, "admin"); cp == nil || cp.ContainerPort != tc.port || cp.Protocol != corev1.ProtocolTCP {
				t.Errorf("container port admin %+v, want %d/TCP", cp, tc.port)
			}
			if adminSvc == nil {
				t.Fatalf("no admin Service rendered: Services %v", r.all("Service"))
			}
			if adminSvc.Name != "rumor-admin" || adminSvc.Spec.Type != corev1.ServiceTypeClusterIP {
				t.Errorf("admin Service %s of type %s, want rumor-admin of type ClusterIP", adminSvc.Name, adminSvc.Spec.Type)
			}
			if !maps.Equal(adminSvc.Spec.Selector, d.Spec.Selector.MatchLabels) {
				t.Errorf("admin Service selector %v, want the Deployment's %v", adminSvc.Spec.Selector, d.Spec.Selector.MatchLabels)
			}
			if len(adminSvc.Spec.Ports) != 1 {
				t.Fatalf("admin Service ports %v, want one", adminSvc.Spec.Ports)
			}
			if sp := adminSvc.Spec.Ports[0]; sp.Name != "admin" || sp.Port != tc.port || sp.TargetPort.String() != "admin" {
				t.Errorf("admin Service port %s %d → %s, want admin %d → admin", sp.Name, sp.Port, sp.TargetPort.String(), tc.port)
			}
			if ap := adminSvc.Spec.Ports[0].AppProtocol; ap == nil || *ap != tc.scheme {
				t.Errorf("admin Service port appProtocol %s, want %q", appProtocol(ap), tc.scheme)
			}

			sel := sm.Spec.Selector.MatchLabels
			if ep.Port != "admin" || ep.Path != "/metrics" || !selects(sel, adminSvc.Labels) {
				t.Errorf("ServiceMonitor scrapes port %q path %q of Services %v, want admin /metrics of %s", ep.Port, ep.Path, sel, adminSvc.Name)
			}
			if selects(sel, httpSvc.Labels) {
				t.Errorf("ServiceMonitor selector %v also picks the HTTP Service, whose port answers 404 for /metrics", sel)
			}

			// The UI left the HTTP Service: the notes lead to the admin Service.
			for _, want := range []string{
				"port-forward service/rumor-admin 9090:" + fmt.Sprint(tc.port),
				tc.scheme + "://127.0.0.1:9090/",
				tc.scheme + "://127.0.0.1:9090/metrics",
			} {
				if !strings.Contains(notes, want) {
					t.Errorf("NOTES.txt does not say %q:\n%s", want, notes)
				}
			}
		})
	}
}

// appProtocol is a Service port's appProtocol, for messages.
func appProtocol(p *string) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprintf("%q", *p)
}
