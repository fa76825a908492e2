package charttest

import (
	"cmp"
	"encoding/base64"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// A valid 32-byte gossip key, and another one.
var (
	customKey = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	otherKey  = base64.StdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))
)

// valueSets are the configurations every generic test runs over, with the
// kinds each must render.
var valueSets = []struct {
	name   string
	rel    release
	kinds  []string
	absent []string
}{
	{
		name:   "defaults",
		kinds:  []string{"Deployment", "PodDisruptionBudget", "Secret", "Service", "Service", "ServiceAccount"},
		absent: []string{"Ingress", "HTTPRoute", "HorizontalPodAutoscaler", "ServiceMonitor"},
	},
	{
		name: "ingress",
		rel: release{Values: `
ingress:
  enabled: true
  className: nginx
  hosts:
    - host: rumor.example.org
      paths:
        - path: /
          pathType: Prefix
  tls:
    - secretName: rumor-tls
      hosts: [rumor.example.org]
`},
		kinds: []string{"Ingress"},
	},
	{
		name: "hpa",
		rel: release{Values: `
autoscaling:
  enabled: true
  minReplicas: 2
  maxReplicas: 6
  targetMemoryUtilizationPercentage: 80
`},
		kinds: []string{"HorizontalPodAutoscaler"},
	},
	{
		name:  "custom-key",
		rel:   release{Values: "gossip:\n  encryption:\n    key: " + customKey + "\n"},
		kinds: []string{"Secret"},
	},
	{
		name: "monitoring",
		rel: release{Values: `
serviceMonitor:
  enabled: true
  labels: {release: kube-prometheus-stack}
  interval: 15s
  scrapeTimeout: 5s
  relabelings:
    - sourceLabels: [__meta_kubernetes_pod_node_name]
      targetLabel: node
grafanaDashboard: {enabled: true, namespace: monitoring}
prometheusRule: {enabled: true, labels: {release: kube-prometheus-stack}}
`},
		kinds: []string{"ServiceMonitor", "ConfigMap", "PrometheusRule"},
	},
	{
		name: "httproute",
		rel: release{Values: `
httpRoute:
  enabled: true
  parentRefs:
    - name: public
      namespace: gateways
      sectionName: https
  hostnames: [rumor.example.org]
  timeouts:
    request: 0s
`},
		kinds:  []string{"HTTPRoute"},
		absent: []string{"Ingress"},
	},
	{
		name: "auth-hmac",
		rel: release{Values: `
auth:
  enabled: true
  hmacSecret: 0123456789abcdef0123456789abcdef
  corsOrigins: ["*"]
`},
		kinds: []string{"Secret"},
	},
	{
		name: "auth-existing-secret",
		rel: release{Values: `
auth:
  enabled: true
  existingSecret: token-keys
  existingSecretKeys: {hmacSecret: "", jwks: jwks.json}
`},
	},
	{
		name: "auth-jwks-url",
		rel: release{Values: `
auth:
  enabled: true
  jwksUrl: https://idp.example.com/.well-known/jwks.json
  jwksRefresh: 1m
config:
  coalesce: 0s
`},
		kinds: []string{"Deployment"},
	},
	{
		name:  "tls",
		rel:   release{Values: tlsValues + "serviceMonitor: {enabled: true, tlsConfig: {serverName: rumor.streams.svc}}\n"},
		kinds: []string{"ServiceMonitor"},
	},
	{
		// TLS through the chart's values, with the admin listener: both ports
		// serve HTTPS from the mounted Secret, and the admin Service is scraped.
		name:  "tls-secret",
		rel:   release{Values: tlsSecretValues + "admin: {enabled: true}\nserviceMonitor: {enabled: true}\n"},
		kinds: []string{"Service", "Service", "Service", "ServiceMonitor"},
	},
	{
		// The admin listener with TLS: the ServiceMonitor scrapes the admin
		// Service over https, and the HTTP Service is public.
		name: "admin",
		rel: release{Values: tlsValues + `
admin: {enabled: true}
service: {type: LoadBalancer}
ingress: {enabled: true}
serviceMonitor: {enabled: true}
`},
		kinds: []string{"Ingress", "Service", "Service", "Service", "ServiceMonitor"},
	},
	{
		name: "everything",
		rel: release{Name: "prod", Namespace: "live", Values: `
replicaCount: 5
fullnameOverride: ""
clusterDomain: corp.internal
containerPorts: {http: 9090}
admin: {enabled: true, port: 9091}
gossip:
  port: 7000
  clusterLabel: prod-eu
  encryption:
    existingSecret: my-gossip
    existingSecretKey: key
service:
  type: LoadBalancer
  port: 443
  nodePort: 30443
auth:
  enabled: true
  publicKey: |
    -----BEGIN PUBLIC KEY-----
    MCowBQYDK2VwAyEAD/wvE71VLoYWMpfM9KIGpbg5g+rYXzzBQpTPeOTav4k=
    -----END PUBLIC KEY-----
  publicChannels: [news, "public.*"]
  corsOrigins: ["https://app.example.org"]
extraEnv:
  - name: GODEBUG
    value: madvdontneed=1
podAnnotations: {team: realtime}
podLabels: {tier: edge}
nodeSelector: {kubernetes.io/os: linux}
tolerations:
  - key: dedicated
    operator: Equal
    value: streams
    effect: NoSchedule
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: ScheduleAnyway
imagePullSecrets: [{name: regcred}]
ingress:
  enabled: true
  annotations:
    nginx.ingress.kubernetes.io/proxy-read-timeout: "7200"
httpRoute: {enabled: true}
serviceMonitor: {enabled: true, namespace: monitoring}
autoscaling: {enabled: true}
`},
		kinds: []string{"Deployment", "HorizontalPodAutoscaler", "HTTPRoute", "Ingress", "PodDisruptionBudget", "Secret", "Service", "Service", "Service", "ServiceAccount", "ServiceMonitor"},
	},
}

// TestLint runs helm's own linter (what `helm lint --strict` runs) with each
// value set; warnings fail too.
func TestLint(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			vals, err := chartutil.ReadValues([]byte(vs.rel.Values))
			if err != nil {
				t.Fatal(err)
			}
			ns := vs.rel.Namespace
			if ns == "" {
				ns = "streams"
			}
			res := lint.All(chartDir, vals, ns, false)
			for _, m := range res.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("helm lint: %s", m)
				}
			}
		})
	}
}

// TestRender renders each value set and decodes every object strictly (see
// decodeStrict), then checks names and labels the API server would reject.
func TestRender(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			r := mustRender(t, vs.rel)
			got := r.kinds()
			for _, k := range vs.kinds {
				if !slices.Contains(got, k) {
					t.Errorf("rendered kinds %v lack %s", got, k)
				}
			}
			for _, k := range vs.absent {
				if slices.Contains(got, k) {
					t.Errorf("rendered kinds %v include %s", got, k)
				}
			}
			if n := len(r.all("Deployment")); n != 1 {
				t.Errorf("rendered %d Deployments, want 1", n)
			}
			for _, o := range r.Objects {
				for _, msg := range validation.IsDNS1123Subdomain(o.Name) {
					t.Errorf("%s %s: name: %s", o.Kind, o.Name, msg)
				}
				if o.Kind == "Service" {
					for _, msg := range validation.IsDNS1035Label(o.Name) {
						t.Errorf("Service %s: name: %s", o.Name, msg)
					}
				}
				meta := o.Obj.(interface{ GetLabels() map[string]string })
				for k, v := range meta.GetLabels() {
					for _, msg := range validation.IsQualifiedName(k) {
						t.Errorf("%s %s: label key %q: %s", o.Kind, o.Name, k, msg)
					}
					for _, msg := range validation.IsValidLabelValue(v) {
						t.Errorf("%s %s: label %s=%q: %s", o.Kind, o.Name, k, v, msg)
					}
				}
			}
			c := container(t, r.deployment(t))
			for _, p := range c.Ports {
				for _, msg := range validation.IsValidPortName(p.Name) {
					t.Errorf("container port %q: %s", p.Name, msg)
				}
			}
			if notes := r.Files["rumor/templates/NOTES.txt"]; !strings.Contains(notes, "curl") {
				t.Errorf("NOTES.txt has no curl example:\n%s", notes)
			}
		})
	}
}

// flags are rumor serve's environment variables (cmd/rumor's contract). A
// RUMOR_* variable outside this list is a typo that rumor would ignore.
var flags = []string{
	"RUMOR_HTTP_ADDR", "RUMOR_NODE_NAME", "RUMOR_GOSSIP_ADDR", "RUMOR_ADVERTISE_ADDR",
	"RUMOR_JOIN", "RUMOR_REJOIN_INTERVAL", "RUMOR_CLUSTER_LABEL", "RUMOR_GOSSIP_KEY",
	"RUMOR_GOSSIP_KEY_FILE", "RUMOR_HISTORY_SIZE", "RUMOR_HISTORY_TTL", "RUMOR_HISTORY_BYTES",
	"RUMOR_HEARTBEAT", "RUMOR_MAX_EVENT_BYTES", "RUMOR_MAX_STREAMS", "RUMOR_MAX_PATTERNS",
	"RUMOR_MAX_BATCH", "RUMOR_QUEUE_SIZE", "RUMOR_ACK", "RUMOR_DRAIN_TIMEOUT",
	"RUMOR_LOG_FORMAT", "RUMOR_LOG_LEVEL", "RUMOR_AUTH_HMAC_SECRET_FILE", "RUMOR_AUTH_PUBLIC_KEY",
	"RUMOR_AUTH_JWKS", "RUMOR_AUTH_JWKS_URL", "RUMOR_AUTH_JWKS_REFRESH", "RUMOR_PUBLIC_CHANNELS",
	"RUMOR_CORS_ORIGINS", "RUMOR_COALESCE", "RUMOR_TLS_CERT", "RUMOR_TLS_KEY", "RUMOR_ADMIN_ADDR",
	"RUMOR_PEER_TLS_SERVER_NAME", "RUMOR_MAX_STREAMS_PER_CLIENT", "RUMOR_TRUSTED_PROXIES",
	"RUMOR_PUBLISH_RATE", "RUMOR_PRESENCE", "RUMOR_PRESENCE_GRACE",
}

// TestWiring checks, for every value set, that the pieces which must agree do:
// peers find each other, Services reach the right ports, probes hit rumor's
// endpoints, and shutdown fits in the grace period.
func TestWiring(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			rel := vs.rel
			if rel.Name == "" {
				rel.Name = "rumor"
			}
			if rel.Namespace == "" {
				rel.Namespace = "streams"
			}
			r := mustRender(t, rel)
			d := r.deployment(t)
			pod := d.Spec.Template
			c := container(t, d)
			e := env(t, c)
			httpSvc, gossipSvc, adminSvc := r.services(t)

			// Every RUMOR_* variable is one rumor reads; the core ones are set.
			for name := range e {
				if strings.HasPrefix(name, "RUMOR_") && !slices.Contains(flags, name) {
					t.Errorf("env %s is not one of rumor serve's variables", name)
				}
			}
			for _, name := range []string{"RUMOR_HTTP_ADDR", "RUMOR_NODE_NAME", "RUMOR_GOSSIP_ADDR", "RUMOR_ADVERTISE_ADDR", "RUMOR_JOIN", "RUMOR_CLUSTER_LABEL", "RUMOR_DRAIN_TIMEOUT", "RUMOR_LOG_FORMAT"} {
				if _, ok := e[name]; !ok {
					t.Errorf("env %s is not set", name)
				}
			}
			if pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks {
				t.Error("enableServiceLinks is not false: Services would inject RUMOR_*-like variables")
			}

			// Selectors: the Deployment owns its pods; every Service and the PDB pick them.
			if !selects(d.Spec.Selector.MatchLabels, pod.Labels) {
				t.Errorf("Deployment selector %v does not match pod labels %v", d.Spec.Selector.MatchLabels, pod.Labels)
			}
			svcs := []*corev1.Service{httpSvc, gossipSvc}
			if adminSvc != nil {
				svcs = append(svcs, adminSvc)
			}
			for _, s := range svcs {
				if !selects(s.Spec.Selector, pod.Labels) {
					t.Errorf("Service %s selector %v does not match pod labels %v", s.Name, s.Spec.Selector, pod.Labels)
				}
				if vs.name != "everything" && s != gossipSvc { // only there may the pod labels carry extras
					if !maps.Equal(d.Spec.Selector.MatchLabels, s.Spec.Selector) {
						t.Errorf("Service %s selector %v differs from the Deployment's %v", s.Name, s.Spec.Selector, d.Spec.Selector.MatchLabels)
					}
				}
			}

			// Gossip: a headless Service that lists not-ready pods, on the gossip port over TCP and UDP.
			if gossipSvc.Spec.ClusterIP != corev1.ClusterIPNone || !gossipSvc.Spec.PublishNotReadyAddresses {
				t.Errorf("gossip Service %s: clusterIP %q, publishNotReadyAddresses %v; want None, true",
					gossipSvc.Name, gossipSvc.Spec.ClusterIP, gossipSvc.Spec.PublishNotReadyAddresses)
			}
			gossipPort := checkGossipPorts(t, c, gossipSvc)

			// Join the headless Service's fully qualified name, on the gossip port.
			domain := "cluster.local"
			if vs.name == "everything" {
				domain = "corp.internal"
			}
			wantJoin := fmt.Sprintf("%s.%s.svc.%s:%d", gossipSvc.Name, rel.Namespace, domain, gossipPort)
			if got := e["RUMOR_JOIN"].Value; got != wantJoin {
				t.Errorf("RUMOR_JOIN = %q, want %q (the gossip Service's FQDN)", got, wantJoin)
			}
			if got, want := e["RUMOR_GOSSIP_ADDR"].Value, fmt.Sprintf("0.0.0.0:%d", gossipPort); got != want {
				t.Errorf("RUMOR_GOSSIP_ADDR = %q, want %q", got, want)
			}
			wantLabel := rel.Name + "." + rel.Namespace
			if vs.name == "everything" {
				wantLabel = "prod-eu"
			}
			if got := e["RUMOR_CLUSTER_LABEL"].Value; got != wantLabel {
				t.Errorf("RUMOR_CLUSTER_LABEL = %q, want %q", got, wantLabel)
			}

			// Downward API: advertise the pod IP, name the node after the pod, and
			// define each variable before it is referenced as $(VAR).
			checkFieldRef(t, e, "POD_IP", "status.podIP")
			checkFieldRef(t, e, "POD_NAME", "metadata.name")
			checkFieldRef(t, e, "POD_NAMESPACE", "metadata.namespace")
			if got := e["RUMOR_ADVERTISE_ADDR"].Value; got != "$(POD_IP)" {
				t.Errorf("RUMOR_ADVERTISE_ADDR = %q, want $(POD_IP)", got)
			}
			if got := e["RUMOR_NODE_NAME"].Value; got != "$(POD_NAME)" {
				t.Errorf("RUMOR_NODE_NAME = %q, want $(POD_NAME)", got)
			}
			checkEnvOrder(t, c)

			// HTTP: Service → container port → RUMOR_HTTP_ADDR → probes.
			httpPort := checkHTTPPorts(t, c, httpSvc, e)
			tls := servesTLS(e)
			checkProbe(t, "liveness", c.LivenessProbe, "/healthz", c, httpPort, tls)
			checkProbe(t, "readiness", c.ReadinessProbe, "/readyz", c, httpPort, tls)
			checkAdmin(t, c, e, httpSvc, adminSvc, httpPort, gossipPort)
			if c.StartupProbe != nil && c.StartupProbe.HTTPGet == nil {
				t.Error("startupProbe is not an HTTP probe; the image has no shell")
			}

			checkStartable(t, e)
			checkNoSubPath(t, c)
			checkShutdown(t, pod.Spec, c, e)
			checkSecurity(t, pod.Spec, c)
			checkGossipKey(t, r, pod.Spec, c, e)
			checkTLSFiles(t, pod.Spec, c, e)

			if len(c.Resources.Requests) == 0 || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("resources %v: want requests and a memory limit", c.Resources)
			}
			if _, ok := e["GOMEMLIMIT"]; ok {
				ref := e["GOMEMLIMIT"].ValueFrom
				if ref == nil || ref.ResourceFieldRef == nil || ref.ResourceFieldRef.Resource != "limits.memory" {
					t.Errorf("GOMEMLIMIT = %+v, want the container's limits.memory", e["GOMEMLIMIT"])
				}
			}

			for _, tsc := range pod.Spec.TopologySpreadConstraints {
				if tsc.LabelSelector == nil || !selects(tsc.LabelSelector.MatchLabels, pod.Labels) {
					t.Errorf("topologySpreadConstraint %s: labelSelector %v does not select the pods", tsc.TopologyKey, tsc.LabelSelector)
				}
			}
			if vs.name == "everything" && len(pod.Spec.TopologySpreadConstraints) != 1 {
				t.Errorf("topologySpreadConstraints %v, want the one from values", pod.Spec.TopologySpreadConstraints)
			}
			for _, o := range r.all("PodDisruptionBudget") {
				checkPDB(t, o.Obj.(*policyv1.PodDisruptionBudget), pod.Labels)
			}
			for _, o := range r.all("HorizontalPodAutoscaler") {
				checkHPA(t, o.Obj.(*autoscalingv2.HorizontalPodAutoscaler), d)
			}
			for _, o := range r.all("Ingress") {
				checkIngress(t, o.Obj.(*networkingv1.Ingress), httpSvc, e["RUMOR_MAX_EVENT_BYTES"].Value, tls)
			}
			for _, o := range r.all("HTTPRoute") {
				checkHTTPRoute(t, o.Obj.(*gatewayv1.HTTPRoute), httpSvc)
			}
			for _, o := range r.all("ServiceMonitor") {
				checkServiceMonitor(t, o.Obj.(*monitoringv1.ServiceMonitor), httpSvc, gossipSvc, adminSvc, rel.Namespace, tls)
			}
			for _, o := range r.all("ServiceAccount") {
				if o.Name != pod.Spec.ServiceAccountName {
					t.Errorf("ServiceAccount %s is not the pods' (%s)", o.Name, pod.Spec.ServiceAccountName)
				}
			}
		})
	}
}

func checkGossipPorts(t *testing.T, c *corev1.Container, svc *corev1.Service) int32 {
	t.Helper()
	var port int32
	protos := map[corev1.Protocol]bool{}
	for _, sp := range svc.Spec.Ports {
		if port != 0 && sp.Port != port {
			t.Errorf("gossip Service ports %d and %d differ: TCP and UDP must share one port", port, sp.Port)
		}
		port = sp.Port
		protos[sp.Protocol] = true
		cp := containerPort(c, sp.TargetPort.String())
		if sp.TargetPort.Type == intstr.Int || cp == nil {
			t.Errorf("gossip Service port %s targets %q, want a named container port", sp.Name, sp.TargetPort.String())
			continue
		}
		if cp.ContainerPort != sp.Port || cp.Protocol != sp.Protocol {
			t.Errorf("gossip Service port %d/%s targets container port %s = %d/%s", sp.Port, sp.Protocol, cp.Name, cp.ContainerPort, cp.Protocol)
		}
	}
	if !protos[corev1.ProtocolTCP] || !protos[corev1.ProtocolUDP] || len(svc.Spec.Ports) != 2 {
		t.Errorf("gossip Service ports %v, want the gossip port on TCP and UDP", svc.Spec.Ports)
	}
	return port
}

func checkHTTPPorts(t *testing.T, c *corev1.Container, svc *corev1.Service, e map[string]corev1.EnvVar) int32 {
	t.Helper()
	if len(svc.Spec.Ports) != 1 {
		t.Fatalf("HTTP Service ports %v, want one", svc.Spec.Ports)
	}
	sp := svc.Spec.Ports[0]
	cp := containerPort(c, sp.TargetPort.String())
	if cp == nil || cp.Protocol != corev1.ProtocolTCP {
		t.Fatalf("HTTP Service targets %q, which is no TCP container port", sp.TargetPort.String())
	}
	if got, want := e["RUMOR_HTTP_ADDR"].Value, fmt.Sprintf(":%d", cp.ContainerPort); got != want {
		t.Errorf("RUMOR_HTTP_ADDR = %q, but the HTTP Service targets container port %d", got, cp.ContainerPort)
	}
	return cp.ContainerPort
}

// checkAdmin: with an admin Service (admin.enabled), rumor listens for the
// UI, /metrics and the cluster views on RUMOR_ADMIN_ADDR, a container port
// named admin apart from the HTTP and gossip ports, which the ClusterIP admin
// Service exposes. Without one, none of that is set. The HTTP Service, which
// may be a public LoadBalancer, never exposes the admin port.
func checkAdmin(t *testing.T, c *corev1.Container, e map[string]corev1.EnvVar, httpSvc, adminSvc *corev1.Service, httpPort, gossipPort int32) {
	t.Helper()
	cp := containerPort(c, "admin")
	for _, sp := range httpSvc.Spec.Ports {
		if sp.Name == "admin" || sp.TargetPort.String() == "admin" || cp != nil && sp.TargetPort.IntVal == cp.ContainerPort {
			t.Errorf("HTTP Service %s exposes the admin port: %s → %s", httpSvc.Name, sp.Name, sp.TargetPort.String())
		}
	}
	addr, set := e["RUMOR_ADMIN_ADDR"]
	if adminSvc == nil {
		if set || cp != nil {
			t.Errorf("no admin Service, but RUMOR_ADMIN_ADDR = %q and container port admin %+v", addr.Value, cp)
		}
		return
	}
	if cp == nil || cmp.Or(cp.Protocol, corev1.ProtocolTCP) != corev1.ProtocolTCP {
		t.Fatalf("admin Service %s, but no TCP container port named admin: %v", adminSvc.Name, c.Ports)
	}
	if got, want := addr.Value, fmt.Sprintf(":%d", cp.ContainerPort); got != want {
		t.Errorf("RUMOR_ADMIN_ADDR = %q, but the admin container port is %d", got, cp.ContainerPort)
	}
	if cp.ContainerPort == httpPort || cp.ContainerPort == gossipPort {
		t.Errorf("admin container port %d is the HTTP (%d) or gossip (%d) port", cp.ContainerPort, httpPort, gossipPort)
	}
	if typ := cmp.Or(adminSvc.Spec.Type, corev1.ServiceTypeClusterIP); typ != corev1.ServiceTypeClusterIP || adminSvc.Spec.ClusterIP == corev1.ClusterIPNone {
		t.Errorf("admin Service %s: type %s, clusterIP %q; want a ClusterIP Service, reachable only in the cluster", adminSvc.Name, typ, adminSvc.Spec.ClusterIP)
	}
	if len(adminSvc.Spec.Ports) != 1 {
		t.Fatalf("admin Service %s ports %v, want one", adminSvc.Name, adminSvc.Spec.Ports)
	}
	sp := adminSvc.Spec.Ports[0]
	if sp.Name != "admin" || sp.TargetPort.Type != intstr.String || sp.TargetPort.StrVal != "admin" || cmp.Or(sp.Protocol, corev1.ProtocolTCP) != corev1.ProtocolTCP {
		t.Errorf("admin Service port %+v, want port admin targeting the container port admin over TCP", sp)
	}
	if sp.NodePort != 0 {
		t.Errorf("admin Service port has nodePort %d", sp.NodePort)
	}
}

// checkProbe: rumor serves either HTTP or, with TLS on, only HTTPS on its
// one port; the kubelet does not verify the certificate of an HTTPS probe.
func checkProbe(t *testing.T, kind string, p *corev1.Probe, path string, c *corev1.Container, port int32, tls bool) {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Errorf("%s probe: want an HTTP GET of %s", kind, path)
		return
	}
	want := corev1.URISchemeHTTP
	if tls {
		want = corev1.URISchemeHTTPS
	}
	if got := cmp.Or(p.HTTPGet.Scheme, corev1.URISchemeHTTP); got != want {
		t.Errorf("%s probe scheme %s, want %s", kind, got, want)
	}
	if p.HTTPGet.Path != path {
		t.Errorf("%s probe path %q, want %q", kind, p.HTTPGet.Path, path)
	}
	got := p.HTTPGet.Port.IntVal
	if p.HTTPGet.Port.Type == intstr.String {
		cp := containerPort(c, p.HTTPGet.Port.StrVal)
		if cp == nil {
			t.Errorf("%s probe port %q names no container port", kind, p.HTTPGet.Port.StrVal)
			return
		}
		got = cp.ContainerPort
	}
	if got != port {
		t.Errorf("%s probe hits port %d, rumor serves HTTP on %d", kind, got, port)
	}
}

func checkFieldRef(t *testing.T, e map[string]corev1.EnvVar, name, path string) {
	t.Helper()
	v, ok := e[name]
	if !ok || v.ValueFrom == nil || v.ValueFrom.FieldRef == nil || v.ValueFrom.FieldRef.FieldPath != path {
		t.Errorf("env %s = %+v, want fieldRef %s", name, v, path)
	}
}

// checkEnvOrder fails when $(VAR) refers to a variable defined later (or not
// at all): Kubernetes then passes the text "$(VAR)" through unexpanded.
func checkEnvOrder(t *testing.T, c *corev1.Container) {
	t.Helper()
	ref := regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
	seen := map[string]bool{}
	for _, v := range c.Env {
		for _, m := range ref.FindAllStringSubmatch(v.Value, -1) {
			if !seen[m[1]] {
				t.Errorf("env %s refers to $(%s) before it is defined", v.Name, m[1])
			}
		}
		seen[v.Name] = true
	}
}

// checkShutdown: the kubelet sleeps in preStop (no shell exec), then SIGTERM
// starts rumor's drain; SIGKILL must come later than both together.
func checkShutdown(t *testing.T, spec corev1.PodSpec, c *corev1.Container, e map[string]corev1.EnvVar) {
	t.Helper()
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
		t.Fatalf("preStop %+v: want the sleep action", c.Lifecycle)
	}
	pre := c.Lifecycle.PreStop
	if pre.Exec != nil || pre.HTTPGet != nil {
		t.Errorf("preStop %+v: want only sleep (the image has no shell)", pre)
	}
	sleep := time.Duration(pre.Sleep.Seconds) * time.Second
	if sleep <= 0 {
		t.Errorf("preStop sleeps %v", sleep)
	}
	drain, err := time.ParseDuration(e["RUMOR_DRAIN_TIMEOUT"].Value)
	if err != nil || drain <= 0 {
		t.Fatalf("RUMOR_DRAIN_TIMEOUT = %q: %v", e["RUMOR_DRAIN_TIMEOUT"].Value, err)
	}
	if spec.TerminationGracePeriodSeconds == nil {
		t.Fatal("terminationGracePeriodSeconds is not set")
	}
	grace := time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	if grace <= sleep+drain {
		t.Errorf("terminationGracePeriodSeconds %v <= preStop %v + drain %v: rumor is killed mid-drain", grace, sleep, drain)
	}
}

func checkSecurity(t *testing.T, spec corev1.PodSpec, c *corev1.Container) {
	t.Helper()
	psc, sc := spec.SecurityContext, c.SecurityContext
	if psc == nil || sc == nil {
		t.Fatal("pod or container securityContext missing")
	}
	if psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("pod securityContext %+v: want runAsNonRoot and a non-zero runAsUser", psc)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem is not true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation is not false")
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		t.Errorf("capabilities %+v: want drop [ALL] and nothing added", sc.Capabilities)
	}
	seccomp := psc.SeccompProfile
	if sc.SeccompProfile != nil {
		seccomp = sc.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("seccompProfile %+v, want RuntimeDefault", seccomp)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("the pod mounts a ServiceAccount token it never uses")
	}
}

// checkGossipKey follows RUMOR_GOSSIP_KEY_FILE to a mounted Secret item, and,
// when the chart makes the Secret, to a valid key in it.
func checkGossipKey(t *testing.T, r *rendered, spec corev1.PodSpec, c *corev1.Container, e map[string]corev1.EnvVar) {
	t.Helper()
	file := e["RUMOR_GOSSIP_KEY_FILE"].Value
	if file == "" {
		t.Fatal("RUMOR_GOSSIP_KEY_FILE is not set (encryption is on by default)")
	}
	vol, key := secretFile(t, spec, c, "RUMOR_GOSSIP_KEY_FILE", file)
	if m := vol.DefaultMode; m == nil || *m&0o004 == 0 && spec.SecurityContext.FSGroup == nil {
		t.Errorf("Secret volume mode %v: the non-root user cannot read the key", m)
	}
	s := r.secret(vol.SecretName)
	if s == nil {
		return // an existing Secret; checked in TestExistingGossipSecret
	}
	v, ok := s.Data[key]
	if !ok {
		t.Fatalf("Secret %s has no key %q", s.Name, key)
	}
	raw, err := base64.StdEncoding.DecodeString(string(v))
	if err != nil || !slices.Contains([]int{16, 24, 32}, len(raw)) {
		t.Errorf("Secret %s[%s] = %q: want base64 of 16, 24 or 32 bytes (%v)", s.Name, key, v, err)
	}
	if s.Annotations["helm.sh/resource-policy"] != "keep" {
		t.Errorf("Secret %s lacks helm.sh/resource-policy: keep", s.Name)
	}
}

// secretFile follows file, the value of the variable name, to the Secret
// volume mounted read-only above it and to the Secret key the file holds. A
// volume without items holds every key of the Secret, each under its own name.
func secretFile(t *testing.T, spec corev1.PodSpec, c *corev1.Container, name, file string) (*corev1.SecretVolumeSource, string) {
	t.Helper()
	var mount *corev1.VolumeMount
	for i, m := range c.VolumeMounts {
		if strings.HasPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/") {
			mount = &c.VolumeMounts[i]
		}
	}
	if mount == nil {
		t.Fatalf("%s %s is under no volume mount", name, file)
	}
	if !mount.ReadOnly {
		t.Errorf("%s: mount %s is writable", name, mount.MountPath)
	}
	var vol *corev1.Volume
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == mount.Name {
			vol = &spec.Volumes[i]
		}
	}
	if vol == nil || vol.Secret == nil {
		t.Fatalf("%s: volume %q is not a Secret volume", name, mount.Name)
	}
	rel := strings.TrimPrefix(file, strings.TrimSuffix(mount.MountPath, "/")+"/")
	if len(vol.Secret.Items) == 0 {
		return vol.Secret, rel
	}
	for _, it := range vol.Secret.Items {
		if it.Path == rel {
			return vol.Secret, it.Key
		}
	}
	t.Fatalf("%s: Secret volume %s has no item at %s", name, vol.Secret.SecretName, rel)
	return nil, ""
}

// checkTLSFiles: with TLS on, RUMOR_TLS_CERT and RUMOR_TLS_KEY name the
// tls.crt and tls.key of a kubernetes.io/tls Secret (cert-manager's, say),
// mounted read-only as a directory and readable by the non-root user.
func checkTLSFiles(t *testing.T, spec corev1.PodSpec, c *corev1.Container, e map[string]corev1.EnvVar) {
	t.Helper()
	if !servesTLS(e) {
		return
	}
	for name, want := range map[string]string{"RUMOR_TLS_CERT": "tls.crt", "RUMOR_TLS_KEY": "tls.key"} {
		vol, key := secretFile(t, spec, c, name, e[name].Value)
		if key != want {
			t.Errorf("%s is key %q of Secret %s, want %q", name, key, vol.SecretName, want)
		}
		// Without defaultMode the kubelet writes 0644.
		if m := vol.DefaultMode; m != nil && *m&0o004 == 0 && spec.SecurityContext.FSGroup == nil {
			t.Errorf("%s: Secret volume mode %o: the non-root user cannot read it", name, *m)
		}
	}
}

func checkPDB(t *testing.T, pdb *policyv1.PodDisruptionBudget, podLabels map[string]string) {
	t.Helper()
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.String() != "1" || pdb.Spec.MinAvailable != nil {
		t.Errorf("PodDisruptionBudget: maxUnavailable %v, minAvailable %v; want 1 and none", pdb.Spec.MaxUnavailable, pdb.Spec.MinAvailable)
	}
	if !selects(pdb.Spec.Selector.MatchLabels, podLabels) {
		t.Errorf("PodDisruptionBudget selector %v does not match the pods", pdb.Spec.Selector.MatchLabels)
	}
}

func checkHPA(t *testing.T, hpa *autoscalingv2.HorizontalPodAutoscaler, d *appsv1.Deployment) {
	t.Helper()
	ref := hpa.Spec.ScaleTargetRef
	if ref.Kind != "Deployment" || ref.Name != d.Name || ref.APIVersion != "apps/v1" {
		t.Errorf("HPA scales %+v, want Deployment %s", ref, d.Name)
	}
	if d.Spec.Replicas != nil {
		t.Errorf("Deployment sets replicas %d while the HPA owns them", *d.Spec.Replicas)
	}
	if len(hpa.Spec.Metrics) == 0 {
		t.Error("HPA has no metrics")
	}
	if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas > hpa.Spec.MaxReplicas {
		t.Errorf("HPA replicas %v..%d", hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
	}
}

func checkIngress(t *testing.T, ing *networkingv1.Ingress, svc *corev1.Service, maxEventBytes string, tls bool) {
	t.Helper()
	// A POST /publish batch may be 4 × --max-event-bytes; nginx refuses larger bodies with 413.
	maxEvent, err := strconv.ParseInt(maxEventBytes, 10, 64)
	if err != nil {
		t.Fatalf("RUMOR_MAX_EVENT_BYTES %q: %v", maxEventBytes, err)
	}
	body := ing.Annotations["nginx.ingress.kubernetes.io/proxy-body-size"]
	mib, err := strconv.ParseInt(strings.TrimSuffix(body, "m"), 10, 64)
	if err != nil || !strings.HasSuffix(body, "m") || mib<<20 < 4*maxEvent {
		t.Errorf("Ingress proxy-body-size %q, want at least 4 × %d bytes", body, maxEvent)
	}
	for _, a := range []string{"proxy-buffering", "proxy-read-timeout", "proxy-send-timeout"} {
		if ing.Annotations["nginx.ingress.kubernetes.io/"+a] == "" {
			t.Errorf("Ingress lacks nginx.ingress.kubernetes.io/%s, which SSE streams need", a)
		}
	}
	if got := ing.Annotations["nginx.ingress.kubernetes.io/proxy-buffering"]; got != "off" {
		t.Errorf("Ingress proxy-buffering %q, want off", got)
	}
	if s, err := strconv.Atoi(ing.Annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]); err != nil || s < 600 {
		t.Errorf("Ingress proxy-read-timeout %q, want at least 600 s", ing.Annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"])
	}
	// Pods that serve TLS serve no plain HTTP: nginx must speak HTTPS to them.
	if got := ing.Annotations["nginx.ingress.kubernetes.io/backend-protocol"]; (got == "HTTPS") != tls {
		t.Errorf("Ingress backend-protocol %q, want HTTPS exactly when the pods serve TLS (%v)", got, tls)
	}
	if len(ing.Spec.Rules) == 0 {
		t.Fatal("Ingress has no rules")
	}
	for _, rule := range ing.Spec.Rules {
		for _, p := range rule.HTTP.Paths {
			b := p.Backend.Service
			if b == nil || b.Name != svc.Name || (b.Port.Name != svc.Spec.Ports[0].Name && b.Port.Number != svc.Spec.Ports[0].Port) {
				t.Errorf("Ingress path %s goes to %+v, want Service %s port %s", p.Path, b, svc.Name, svc.Spec.Ports[0].Name)
			}
		}
	}
}

func checkHTTPRoute(t *testing.T, route *gatewayv1.HTTPRoute, svc *corev1.Service) {
	t.Helper()
	if len(route.Spec.ParentRefs) == 0 || len(route.Spec.Rules) == 0 {
		t.Fatalf("HTTPRoute: parentRefs %v, rules %v", route.Spec.ParentRefs, route.Spec.Rules)
	}
	for _, rule := range route.Spec.Rules {
		for _, b := range rule.BackendRefs {
			if string(b.Name) != svc.Name || b.Port == nil || int32(*b.Port) != svc.Spec.Ports[0].Port || (b.Kind != nil && *b.Kind != "Service") {
				t.Errorf("HTTPRoute backend %+v, want Service %s port %d", b.BackendObjectReference, svc.Name, svc.Spec.Ports[0].Port)
			}
		}
	}
}

// checkServiceMonitor: /metrics is on the admin Service when there is one
// (the HTTP port answers 404 there), else on the HTTP Service; the selector
// picks that one Service and no other, or Prometheus would scrape each pod
// twice or hit a port without metrics.
func checkServiceMonitor(t *testing.T, sm *monitoringv1.ServiceMonitor, httpSvc, gossipSvc, adminSvc *corev1.Service, ns string, tls bool) {
	t.Helper()
	target, others := httpSvc, []*corev1.Service{gossipSvc}
	if adminSvc != nil {
		target, others = adminSvc, []*corev1.Service{gossipSvc, httpSvc}
	}
	sel := sm.Spec.Selector.MatchLabels
	if !selects(sel, target.Labels) {
		t.Errorf("ServiceMonitor selector %v does not match Service %s's labels %v", sel, target.Name, target.Labels)
	}
	for _, s := range others {
		if selects(sel, s.Labels) {
			t.Errorf("ServiceMonitor selector %v also matches Service %s", sel, s.Name)
		}
	}
	if !slices.Equal(sm.Spec.NamespaceSelector.MatchNames, []string{ns}) {
		t.Errorf("ServiceMonitor namespaces %v, want [%s]", sm.Spec.NamespaceSelector.MatchNames, ns)
	}
	if len(sm.Spec.Endpoints) != 1 {
		t.Fatalf("ServiceMonitor endpoints %v, want one", sm.Spec.Endpoints)
	}
	ep := sm.Spec.Endpoints[0]
	if ep.Port != target.Spec.Ports[0].Name || ep.Path != "/metrics" {
		t.Errorf("ServiceMonitor scrapes port %q path %q, want %s /metrics of Service %s", ep.Port, ep.Path, target.Spec.Ports[0].Name, target.Name)
	}
	want := "http"
	if tls {
		want = "https"
	}
	if got := ep.Scheme.String(); got != want {
		t.Errorf("ServiceMonitor scheme %q, want %q", got, want)
	}
}

// TestGossipKeyKeptOnUpgrade simulates install then upgrade. The chart's
// `lookup` runs through helm's engine against a fake dynamic client holding
// what the install created, which is what `helm upgrade` does against a real
// API server. Not covered: helm's own plumbing from a kubeconfig to that client.
func TestGossipKeyKeptOnUpgrade(t *testing.T) {
	install := mustRender(t, release{})
	if install.Lookups == 0 {
		t.Fatal("the chart never called lookup: the generated key cannot survive an upgrade")
	}
	first := generatedSecret(t, install)
	firstSum := install.deployment(t).Spec.Template.Annotations["checksum/gossip-key"]
	if firstSum == "" {
		t.Fatal("pods have no checksum/gossip-key annotation")
	}

	upgrade := mustRender(t, release{Upgrade: true, Cluster: []runtime.Object{first}})
	second := generatedSecret(t, upgrade)
	if got, want := string(second.Data["gossip-key"]), string(first.Data["gossip-key"]); got != want {
		t.Errorf("upgrade changed the gossip key: %q, was %q", got, want)
	}
	if got := upgrade.deployment(t).Spec.Template.Annotations["checksum/gossip-key"]; got != firstSum {
		t.Errorf("upgrade changed checksum/gossip-key (%s, was %s): every pod would restart", got, firstSum)
	}

	// Without the Secret in the cluster a new key is made: the test above is
	// not passing by accident of a constant key.
	other := generatedSecret(t, mustRender(t, release{}))
	if string(other.Data["gossip-key"]) == string(first.Data["gossip-key"]) {
		t.Error("two installs generated the same gossip key")
	}

	// A key given in values wins over the one in the cluster, and rolls the pods.
	custom := mustRender(t, release{Upgrade: true, Cluster: []runtime.Object{first},
		Values: "gossip:\n  encryption:\n    key: " + customKey + "\n"})
	if got := string(generatedSecret(t, custom).Data["gossip-key"]); got != customKey {
		t.Errorf("with gossip.encryption.key set the Secret holds %q, want %q", got, customKey)
	}
	if custom.deployment(t).Spec.Template.Annotations["checksum/gossip-key"] == firstSum {
		t.Error("changing the key did not change checksum/gossip-key: pods would keep the old key")
	}
	changed := mustRender(t, release{Upgrade: true, Values: "gossip:\n  encryption:\n    key: " + otherKey + "\n"})
	if changed.deployment(t).Spec.Template.Annotations["checksum/gossip-key"] == custom.deployment(t).Spec.Template.Annotations["checksum/gossip-key"] {
		t.Error("two different keys gave the same checksum/gossip-key")
	}
}

func generatedSecret(t *testing.T, r *rendered) *corev1.Secret {
	t.Helper()
	s := r.secret("rumor-gossip-key")
	if s == nil {
		t.Fatalf("no Secret rumor-gossip-key rendered (kinds %v)", r.kinds())
	}
	// As the API server stores it, so the fake cluster can serve it to lookup.
	s = s.DeepCopy()
	s.Namespace = "streams"
	return s
}

// TestExistingGossipSecret: with existingSecret the chart makes no Secret and
// mounts the user's, under the user's key name.
func TestExistingGossipSecret(t *testing.T) {
	r := mustRender(t, release{Values: `
gossip:
  encryption:
    existingSecret: shared-gossip
    existingSecretKey: aes
`})
	if n := len(r.all("Secret")); n != 0 {
		t.Errorf("rendered %d Secrets, want none", n)
	}
	spec := r.deployment(t).Spec.Template.Spec
	var found bool
	for _, v := range spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName == "shared-gossip" {
			found = len(v.Secret.Items) == 1 && v.Secret.Items[0].Key == "aes"
		}
	}
	if !found {
		t.Errorf("volumes %+v: want Secret shared-gossip, item aes", spec.Volumes)
	}
}

// TestGossipEncryptionOff: no Secret, no key file.
func TestGossipEncryptionOff(t *testing.T) {
	r := mustRender(t, release{Values: "gossip:\n  encryption:\n    enabled: false\n"})
	if n := len(r.all("Secret")); n != 0 {
		t.Errorf("rendered %d Secrets, want none", n)
	}
	e := env(t, container(t, r.deployment(t)))
	if _, ok := e["RUMOR_GOSSIP_KEY_FILE"]; ok {
		t.Error("RUMOR_GOSSIP_KEY_FILE set with encryption off")
	}
}

// TestAuth: key material lands in the auth Secret, mounted where the
// RUMOR_AUTH_* variables point.
func TestAuth(t *testing.T) {
	r := mustRender(t, release{Values: `
auth:
  enabled: true
  jwks: '{"keys":[]}'
  publicChannels: [news]
`})
	d := r.deployment(t)
	c := container(t, d)
	e := env(t, c)
	if got := e["RUMOR_AUTH_JWKS"].Value; got != "/etc/rumor/auth/jwks.json" {
		t.Errorf("RUMOR_AUTH_JWKS = %q", got)
	}
	if _, ok := e["RUMOR_AUTH_HMAC_SECRET_FILE"]; ok {
		t.Error("RUMOR_AUTH_HMAC_SECRET_FILE set without an HMAC secret")
	}
	if got := e["RUMOR_PUBLIC_CHANNELS"].Value; got != "news" {
		t.Errorf("RUMOR_PUBLIC_CHANNELS = %q", got)
	}
	s := r.secret("rumor-auth")
	if s == nil || string(s.Data["jwks.json"]) != `{"keys":[]}` {
		t.Fatalf("auth Secret %+v", s)
	}
	if d.Spec.Template.Annotations["checksum/auth"] == "" {
		t.Error("no checksum/auth annotation: pods would not pick up new keys")
	}

	// With auth off, key material left in the values reaches neither the pod
	// nor a Secret. (auth.publicChannels with auth off fails the render:
	// TestConflictingValues.)
	off := mustRender(t, release{Values: "auth: {jwks: '{\"keys\":[]}', jwksUrl: " + jwksURL + "}"})
	for name := range env(t, container(t, off.deployment(t))) {
		if strings.Contains(name, "AUTH") {
			t.Errorf("auth is off but %s is set", name)
		}
	}
	if s := off.secret("rumor-auth"); s != nil {
		t.Errorf("auth is off but the auth Secret is rendered: %+v", s)
	}
}

// TestCORSOrigins: rumor takes --cors-origins with auth on or off
// (cmd/rumor/security.go), so auth.corsOrigins reaches it whatever
// auth.enabled is.
func TestCORSOrigins(t *testing.T) {
	for values, want := range map[string]string{
		"": "",
		`auth: {corsOrigins: ["https://app.example.com", "http://localhost:3000"]}`:   "https://app.example.com,http://localhost:3000",
		`auth: {enabled: false, corsOrigins: ["*"]}`:                                  "*",
		`auth: {enabled: true, jwks: '{}', corsOrigins: ["https://app.example.com"]}`: "https://app.example.com",
	} {
		e := env(t, container(t, mustRender(t, release{Values: values}).deployment(t)))
		got, ok := e["RUMOR_CORS_ORIGINS"]
		switch {
		case want == "" && ok:
			t.Errorf("values %q: RUMOR_CORS_ORIGINS = %q, want it unset", values, got.Value)
		case want != "" && got.Value != want:
			t.Errorf("values %q: RUMOR_CORS_ORIGINS = %q, want %q", values, got.Value, want)
		}
	}
}

// tlsValues turn TLS on through extraEnv, the way the chart's docs describe.
const tlsValues = `
extraEnv:
  - {name: RUMOR_TLS_CERT, value: /etc/rumor/tls/tls.crt}
  - {name: RUMOR_TLS_KEY, value: /etc/rumor/tls/tls.key}
extraVolumes:
  - name: tls
    secret: {secretName: rumor-tls}
extraVolumeMounts:
  - {name: tls, mountPath: /etc/rumor/tls, readOnly: true}
`

// tlsPeerValues are tlsValues that also name the peers' certificate by hand.
const tlsPeerValues = `
extraEnv:
  - {name: RUMOR_TLS_CERT, value: /etc/rumor/tls/tls.crt}
  - {name: RUMOR_TLS_KEY, value: /etc/rumor/tls/tls.key}
  - {name: RUMOR_PEER_TLS_SERVER_NAME, value: rumor.corp.internal}
extraVolumes:
  - name: tls
    secret: {secretName: rumor-tls}
extraVolumeMounts:
  - {name: tls, mountPath: /etc/rumor/tls, readOnly: true}
`

// tlsSecretValues turn TLS on through the chart's own values.
const tlsSecretValues = `
tls:
  enabled: true
  existingSecret: rumor-tls
`

// servesTLS reports whether rumor serves HTTPS with this environment. It
// then serves no plain HTTP at all (cmd/rumor/node.go: one listener, ServeTLS).
func servesTLS(e map[string]corev1.EnvVar) bool {
	_, cert := e["RUMOR_TLS_CERT"]
	_, key := e["RUMOR_TLS_KEY"]
	return cert && key
}

// TestTLS: with TLS on, through tls.enabled or through extraEnv, rumor serves
// only HTTPS, so the probes and the ServiceMonitor's scrapes use https;
// without it, http.
func TestTLS(t *testing.T) {
	const monitor = `
serviceMonitor:
  enabled: true
  tlsConfig:
    serverName: rumor.streams.svc
    ca:
      secret: {name: rumor-ca, key: ca.crt}
`
	for _, tc := range []struct {
		name, values string
		tls          bool
	}{
		{"tls", tlsValues + monitor, true},
		{"tls values", tlsSecretValues + monitor, true},
		{"plain", monitor, false},
		{"tls values off", "tls: {existingSecret: rumor-tls}\n" + monitor, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRender(t, release{Values: tc.values})
			c := container(t, r.deployment(t))
			if got := servesTLS(env(t, c)); got != tc.tls {
				t.Fatalf("servesTLS = %v, want %v", got, tc.tls)
			}
			wantProbe, wantScrape := corev1.URISchemeHTTP, "http"
			if tc.tls {
				wantProbe, wantScrape = corev1.URISchemeHTTPS, "https"
			}
			for kind, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
				if p == nil || p.HTTPGet == nil || cmp.Or(p.HTTPGet.Scheme, corev1.URISchemeHTTP) != wantProbe {
					t.Errorf("%s probe %+v, want an HTTP GET with scheme %s", kind, p, wantProbe)
				}
			}

			sm := one[*monitoringv1.ServiceMonitor](t, r, "ServiceMonitor")
			if len(sm.Spec.Endpoints) != 1 {
				t.Fatalf("ServiceMonitor endpoints %v, want one", sm.Spec.Endpoints)
			}
			ep := sm.Spec.Endpoints[0]
			if got := ep.Scheme.String(); got != wantScrape {
				t.Errorf("ServiceMonitor scheme %q, want %q", got, wantScrape)
			}
			// tlsConfig is passed as given; Prometheus uses it only for https.
			got := ep.TLSConfig
			if got == nil || got.ServerName == nil || *got.ServerName != "rumor.streams.svc" ||
				got.CA.Secret == nil || got.CA.Secret.Name != "rumor-ca" || got.CA.Secret.Key != "ca.crt" {
				t.Errorf("ServiceMonitor tlsConfig %+v, want serviceMonitor.tlsConfig", got)
			}

			// The HTTP Service tells meshes and gateways what the port speaks.
			httpSvc, _, _ := r.services(t)
			for _, p := range httpSvc.Spec.Ports {
				if p.Name == "http" && (p.AppProtocol == nil || *p.AppProtocol != wantScrape) {
					t.Errorf("HTTP Service port appProtocol %s, want %q", appProtocol(p.AppProtocol), wantScrape)
				}
			}

			notes := r.Files["rumor/templates/NOTES.txt"]
			local := "http://127.0.0.1:8080/"
			if tc.tls {
				local = "https://127.0.0.1:8080/"
			}
			if !strings.Contains(notes, local) {
				t.Errorf("NOTES.txt does not use %s:\n%s", local, notes)
			}
		})
	}

	// By default the ServiceMonitor carries no tlsConfig.
	r := mustRender(t, release{Values: tlsValues + "serviceMonitor: {enabled: true}"})
	if tc := one[*monitoringv1.ServiceMonitor](t, r, "ServiceMonitor").Spec.Endpoints[0].TLSConfig; tc != nil {
		t.Errorf("ServiceMonitor tlsConfig %+v, want none by default", tc)
	}
}

// TestTLSSecret: tls.enabled mounts tls.existingSecret, a kubernetes.io/tls
// Secret (cert-manager's, say), as a read-only directory and points
// RUMOR_TLS_CERT and RUMOR_TLS_KEY at its files. Never with subPath: the
// kubelet then swaps renewed files in, and rumor loads them without a restart.
// The chart makes no Secret of its own for it.
func TestTLSSecret(t *testing.T) {
	r := mustRender(t, release{Values: tlsSecretValues})
	spec := r.deployment(t).Spec.Template.Spec
	c := container(t, r.deployment(t))
	e := env(t, c)
	for name, want := range map[string]string{"RUMOR_TLS_CERT": "/etc/rumor/tls/tls.crt", "RUMOR_TLS_KEY": "/etc/rumor/tls/tls.key"} {
		if got := e[name]; got.Value != want || got.ValueFrom != nil {
			t.Errorf("%s = %+v, want %q", name, got, want)
		}
	}

	var mount *corev1.VolumeMount
	for i, m := range c.VolumeMounts {
		if m.MountPath == "/etc/rumor/tls" {
			mount = &c.VolumeMounts[i]
		}
	}
	if mount == nil {
		t.Fatalf("volume mounts %+v: none at /etc/rumor/tls", c.VolumeMounts)
	}
	if !mount.ReadOnly || mount.SubPath != "" || mount.SubPathExpr != "" {
		t.Errorf("TLS mount %+v, want read-only and without subPath", mount)
	}
	var vol *corev1.Volume
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == mount.Name {
			vol = &spec.Volumes[i]
		}
	}
	if vol == nil || vol.Secret == nil || vol.Secret.SecretName != "rumor-tls" {
		t.Fatalf("volume %+v, want Secret rumor-tls", vol)
	}
	wantItems := []corev1.KeyToPath{{Key: "tls.crt", Path: "tls.crt"}, {Key: "tls.key", Path: "tls.key"}}
	if !slices.EqualFunc(vol.Secret.Items, wantItems, func(a, b corev1.KeyToPath) bool {
		return a.Key == b.Key && a.Path == b.Path && a.Mode == nil
	}) {
		t.Errorf("TLS volume items %+v, want %+v", vol.Secret.Items, wantItems)
	}
	if m := vol.Secret.DefaultMode; m == nil || *m != 0o444 {
		t.Errorf("TLS volume defaultMode %v, want 0444 like the other key mounts", m)
	}
	if s := r.secret("rumor-tls"); s != nil {
		t.Errorf("the chart rendered the Secret tls.existingSecret names: %+v", s)
	}
	if notes := r.Files["rumor/templates/NOTES.txt"]; !strings.Contains(notes, "rumor-tls") {
		t.Errorf("NOTES.txt does not name the certificate's Secret:\n%s", notes)
	}
	// Behind an Ingress: TestIngressBackendProtocol.

	// tls.existingSecret alone turns nothing on.
	off := mustRender(t, release{Values: "tls: {existingSecret: rumor-tls}"})
	oc := container(t, off.deployment(t))
	if servesTLS(env(t, oc)) {
		t.Error("RUMOR_TLS_CERT and RUMOR_TLS_KEY set with tls.enabled false")
	}
	for _, v := range off.deployment(t).Spec.Template.Spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName == "rumor-tls" {
			t.Errorf("Secret rumor-tls mounted with tls.enabled false: %+v", v)
		}
	}
}

// TestIngressBackendProtocol: with TLS on, rumor serves no plain HTTP, and
// ingress-nginx, which speaks HTTP to its backends unless told otherwise,
// gets 502s. So with ingress.nginxStreaming the chart tells it, next to its
// other ingress-nginx annotations: backend-protocol HTTPS. A value of the
// user's own in ingress.annotations wins, even an empty one, and appears once
// (strict decoding refuses a duplicate key). With nginxStreaming off the
// controller may be another one, which needs its own setting: the chart sets
// nothing and NOTES.txt tells what to set.
func TestIngressBackendProtocol(t *testing.T) {
	const (
		key  = "nginx.ingress.kubernetes.io/backend-protocol"
		hint = "backend-protocol: HTTPS"
	)
	for _, tc := range []struct {
		name, values string
		want         string // the annotation's value; empty: unset, unless set is true
		set          bool   // the annotation is there, even with an empty value
		hint         bool   // NOTES.txt asks for the annotation
	}{
		{"tls values", tlsSecretValues + "ingress: {enabled: true}", "HTTPS", true, false},
		{"tls in extraEnv", tlsValues + "ingress: {enabled: true}", "HTTPS", true, false},
		{"plain", "ingress: {enabled: true}", "", false, false},
		{"tls values, no nginxStreaming", tlsSecretValues + "ingress: {enabled: true, nginxStreaming: false}", "", false, true},
		{"tls in extraEnv, no nginxStreaming", tlsValues + "ingress: {enabled: true, nginxStreaming: false}", "", false, true},
		{"tls values, own value", tlsSecretValues + "ingress: {enabled: true, annotations: {" + key + ": GRPCS}}", "GRPCS", true, false},
		{"tls values, own empty value", tlsSecretValues + "ingress: {enabled: true, annotations: {" + key + ": ''}}", "", true, false},
		{"tls values, no nginxStreaming, own value", tlsSecretValues + "ingress: {enabled: true, nginxStreaming: false, annotations: {" + key + ": HTTPS}}", "HTTPS", true, false},
		{"plain, own value", "ingress: {enabled: true, annotations: {" + key + ": GRPC}}", "GRPC", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRender(t, release{Values: tc.values})
			ing := one[*networkingv1.Ingress](t, r, "Ingress")
			got, ok := ing.Annotations[key]
			if ok != tc.set || got != tc.want {
				t.Errorf("Ingress annotation %s = %q (set: %v), want %q (set: %v)", key, got, ok, tc.want, tc.set)
			}
			if n := strings.Count(r.Files["rumor/templates/ingress.yaml"], key); n > 1 {
				t.Errorf("Ingress has %s %d times, want once", key, n)
			}
			notes := r.Files["rumor/templates/NOTES.txt"]
			if strings.Contains(notes, hint) != tc.hint {
				t.Errorf("NOTES.txt asks for %q: %v, want %v:\n%s", hint, !tc.hint, tc.hint, notes)
			}
		})
	}
}

// TestPeerTLSServerName: the UI's cluster view asks each peer over HTTPS at
// the address it advertises, its pod IP, which a certificate shared by all
// pods cannot name. So with tls.enabled the chart has rumor verify the HTTP
// Service's DNS name on the peers' certificates instead
// (--peer-tls-server-name), or tls.peerServerName when that is set. TLS
// through extraEnv is set up by hand, and gets the variable only from
// tls.peerServerName. With TLS off it is never set: rumor would refuse it.
func TestPeerTLSServerName(t *testing.T) {
	for _, tc := range []struct {
		name string
		rel  release
		want string // empty: unset
		hand bool   // set in extraEnv, not by the chart, so NOTES.txt cannot tell
	}{
		{"tls values", release{Values: tlsSecretValues}, "rumor.streams.svc", false},
		{"tls values, other release", release{Name: "prod", Namespace: "live", Values: tlsSecretValues}, "prod-rumor.live.svc", false},
		{"tls values, full name override", release{Values: tlsSecretValues + "fullnameOverride: events\n"}, "events.streams.svc", false},
		// Peers are asked on the admin port then, but the name is still the HTTP Service's.
		{"tls values, admin", release{Values: tlsSecretValues + "admin: {enabled: true}\n"}, "rumor.streams.svc", false},
		{"tls values, own name", release{Values: tlsSecretValues + "  peerServerName: rumor.example.internal\n"}, "rumor.example.internal", false},
		{"tls in extraEnv", release{Values: tlsValues}, "", false},
		{"tls in extraEnv, own name", release{Values: tlsValues + "tls: {peerServerName: rumor.streams.svc}\n"}, "rumor.streams.svc", false},
		{"tls in extraEnv, name in extraEnv", release{Values: tlsPeerValues}, "rumor.corp.internal", true},
		{"plain", release{}, "", false},
		{"tls off, secret left in", release{Values: "tls: {existingSecret: rumor-tls}"}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRender(t, tc.rel)
			e := env(t, container(t, r.deployment(t)))
			got, ok := e["RUMOR_PEER_TLS_SERVER_NAME"]
			switch {
			case tc.want == "" && ok:
				t.Errorf("RUMOR_PEER_TLS_SERVER_NAME = %+v, want it unset", got)
			case tc.want != "" && (got.Value != tc.want || got.ValueFrom != nil):
				t.Errorf("RUMOR_PEER_TLS_SERVER_NAME = %+v, want %q", got, tc.want)
			}
			checkStartable(t, e)
			notes := r.Files["rumor/templates/NOTES.txt"]
			if tc.want != "" && !tc.hand && !strings.Contains(notes, tc.want) {
				t.Errorf("NOTES.txt does not name %s, which the certificate must carry:\n%s", tc.want, notes)
			}
		})
	}

	// The default is the DNS name of the HTTP Service the chart renders.
	r := mustRender(t, release{Name: "prod", Namespace: "live", Values: tlsSecretValues})
	httpSvc, _, _ := r.services(t)
	want := httpSvc.Name + ".live.svc"
	if got := env(t, container(t, r.deployment(t)))["RUMOR_PEER_TLS_SERVER_NAME"].Value; got != want {
		t.Errorf("RUMOR_PEER_TLS_SERVER_NAME = %q, want %q, the HTTP Service's DNS name", got, want)
	}
}

// TestAuthJWKSURL: the URL is a plain variable next to its refresh interval,
// and with no key file there is no auth Secret and nothing to mount.
func TestAuthJWKSURL(t *testing.T) {
	r := mustRender(t, release{Values: "auth:\n  enabled: true\n  jwksUrl: " + jwksURL + "\n  jwksRefresh: 90s\n"})
	d := r.deployment(t)
	c := container(t, d)
	e := env(t, c)
	if got := e["RUMOR_AUTH_JWKS_URL"]; got.Value != jwksURL || got.ValueFrom != nil {
		t.Errorf("RUMOR_AUTH_JWKS_URL = %+v, want the plain value %q", got, jwksURL)
	}
	if got := e["RUMOR_AUTH_JWKS_REFRESH"].Value; got != "90s" {
		t.Errorf("RUMOR_AUTH_JWKS_REFRESH = %q, want 90s", got)
	}
	for _, name := range []string{"RUMOR_AUTH_HMAC_SECRET_FILE", "RUMOR_AUTH_PUBLIC_KEY", "RUMOR_AUTH_JWKS"} {
		if _, ok := e[name]; ok {
			t.Errorf("%s set next to RUMOR_AUTH_JWKS_URL", name)
		}
	}
	if s := r.secret("rumor-auth"); s != nil {
		t.Errorf("auth Secret rendered with no key material: %+v", s)
	}
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == "auth" {
			t.Errorf("auth volume %+v mounted with no key files", v)
		}
	}
	if a := d.Spec.Template.Annotations["checksum/auth"]; a != "" {
		t.Errorf("checksum/auth = %q with no auth Secret", a)
	}

	// The refresh only goes where the URL goes.
	hmac := mustRender(t, release{Values: "auth: {enabled: true, hmacSecret: 0123456789abcdef0123456789abcdef}"})
	if _, ok := env(t, container(t, hmac.deployment(t)))["RUMOR_AUTH_JWKS_REFRESH"]; ok {
		t.Error("RUMOR_AUTH_JWKS_REFRESH set without auth.jwksUrl")
	}
}

// TestCoalesce: config.coalesce reaches rumor as written, a bare 0 included.
func TestCoalesce(t *testing.T) {
	for values, want := range map[string]string{
		"":                          "1ms",
		"config: {coalesce: 0}":     "0",
		"config: {coalesce: 250us}": "250us",
	} {
		e := env(t, container(t, mustRender(t, release{Values: values}).deployment(t)))
		if got := e["RUMOR_COALESCE"].Value; got != want {
			t.Errorf("values %q: RUMOR_COALESCE = %q, want %q", values, got, want)
		}
	}
}

// checkNoSubPath: key files are mounted as directories. The kubelet updates a
// directory mount when its Secret changes, and rumor reloads the key; it never
// updates a subPath mount, so a rotated key would wait for a restart.
func checkNoSubPath(t *testing.T, c *corev1.Container) {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if m.SubPath != "" || m.SubPathExpr != "" {
			t.Errorf("volume mount %s uses subPath %q%q: Secret updates would never reach it", m.Name, m.SubPath, m.SubPathExpr)
		}
	}
}

// TestBadValues: values.schema.json and the templates' own checks reject
// wrong values with a message that names the value.
func TestBadValues(t *testing.T) {
	cases := []struct {
		values string
		want   []string // all must appear in the error
	}{
		{"replicaCount: three", []string{"replicaCount", "want integer"}},
		{"replicaCount: 0", []string{"replicaCount", "minimum"}},
		{"replicas: 3", []string{"additional properties 'replicas' not allowed"}},
		{"config:\n  logFormat: xml", []string{"logFormat", "'json', 'text'"}},
		{"config:\n  logLevel: verbose", []string{"logLevel", "'debug'"}},
		{"config:\n  historyTTL: 5 minutes", []string{"historyTTL", "does not match pattern"}},
		{"config:\n  drainTimeoutSeconds: 10s", []string{"drainTimeoutSeconds", "want integer"}},
		{"gossip:\n  port: 70000", []string{"gossip/port", "maximum"}},
		{"gossip:\n  encryption:\n    key: not-a-key", []string{"encryption/key", "does not match pattern"}},
		{"service:\n  type: Ingress", []string{"service/type", "'ClusterIP'"}},
		{"image:\n  pullPolicy: Sometimes", []string{"pullPolicy", "'IfNotPresent'"}},
		{"preStopSleepSeconds: 0", []string{"preStopSleepSeconds", "minimum"}},
		{"ingress:\n  enabled: yes-please", []string{"ingress/enabled", "want boolean"}},
		{"terminationGracePeriodSeconds: 15", []string{"terminationGracePeriodSeconds (15) must exceed preStopSleepSeconds + config.drainTimeoutSeconds (15)"}},
		{"auth:\n  enabled: true", []string{"auth.enabled needs key material"}},
		{"autoscaling:\n  enabled: true\n  minReplicas: 5\n  maxReplicas: 2", []string{"autoscaling.minReplicas (5) exceeds autoscaling.maxReplicas (2)"}},
		{"admin:\n  port: 0", []string{"admin/port", "minimum"}},
		{"admin:\n  enabled: true\n  servicePort: 80", []string{"additional properties 'servicePort' not allowed"}},
		{"tls:\n  enabled: true\n  secretName: rumor-tls", []string{"additional properties 'secretName' not allowed"}},
		{"tls:\n  enabled: yes-please", []string{"tls/enabled", "want boolean"}},
		{"tls:\n  enabled: true\n  existingSecret: rumor-tls\n  peerServerName: https://rumor.streams.svc", []string{"tls/peerServerName", "does not match pattern"}},
		{"tls:\n  enabled: true\n  existingSecret: rumor-tls\n  peerServerName: rumor.streams.svc:443", []string{"tls/peerServerName", "does not match pattern"}},
	}
	for _, tc := range cases {
		_, err := renderRelease(t, release{Values: tc.values})
		if err == nil {
			t.Errorf("values %q: rendered without error", tc.values)
			continue
		}
		t.Logf("values %q:\n%v", tc.values, err)
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("values %q: error %q does not say %q", tc.values, err, w)
			}
		}
	}
}

// TestImageMatchesChart: the ports and user the chart assumes are the ones the
// Dockerfile exposes and runs as.
func TestImageMatchesChart(t *testing.T) {
	df, err := os.ReadFile(filepath.Join(chartDir, "..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	r := mustRender(t, release{})
	spec := r.deployment(t).Spec.Template.Spec
	c := container(t, r.deployment(t))
	var expose, user string
	for line := range strings.Lines(string(df)) {
		f := strings.Fields(line)
		if len(f) > 1 && f[0] == "EXPOSE" {
			expose += " " + strings.Join(f[1:], " ") + " "
		}
		if len(f) > 1 && f[0] == "USER" {
			user = f[1]
		}
	}
	for _, p := range c.Ports {
		want := fmt.Sprintf(" %d/%s ", p.ContainerPort, strings.ToLower(string(p.Protocol)))
		if !strings.Contains(expose, want) {
			t.Errorf("container port %s %d/%s is not EXPOSEd by the Dockerfile (%s)", p.Name, p.ContainerPort, p.Protocol, expose)
		}
	}
	uid := strconv.FormatInt(*spec.SecurityContext.RunAsUser, 10)
	if strings.Split(user, ":")[0] != uid {
		t.Errorf("Dockerfile USER %q, chart runAsUser %s", user, uid)
	}
}
