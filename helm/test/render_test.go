package charttest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"
)

// chartDir is the chart under test, relative to this package.
const chartDir = "../rumor"

// release describes one simulated `helm install` or `helm upgrade`.
type release struct {
	Name      string
	Namespace string
	Values    string // YAML, as given with -f
	Upgrade   bool
	// Cluster holds the objects that the template function `lookup` finds.
	Cluster []runtime.Object
}

// rendered is the output of one render, decoded strictly.
type rendered struct {
	Files   map[string]string // template path → rendered text
	Objects []object
	Lookups int // calls of `lookup` that reached the fake cluster
}

type object struct {
	File string
	Kind string
	Name string
	Obj  any // *appsv1.Deployment, *corev1.Service, …
}

func loadChart(tb testing.TB) *chart.Chart {
	tb.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		tb.Fatalf("load chart %s: %v", chartDir, err)
	}
	return ch
}

// capabilities are helm's defaults plus the CRDs the optional objects need.
func capabilities() *chartutil.Capabilities {
	caps := *chartutil.DefaultCapabilities
	caps.APIVersions = append(slices.Clone(caps.APIVersions),
		"monitoring.coreos.com/v1", "monitoring.coreos.com/v1/ServiceMonitor", "monitoring.coreos.com/v1/PrometheusRule",
		"gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1/HTTPRoute")
	return &caps
}

// renderRelease renders the chart the way `helm install`/`helm upgrade` do:
// values are coalesced with values.yaml and checked against values.schema.json
// (chartutil.ToRenderValues), then the templates are executed by helm's engine
// with `lookup` answered from rel.Cluster instead of a live API server.
func renderRelease(tb testing.TB, rel release) (*rendered, error) {
	tb.Helper()
	if rel.Name == "" {
		rel.Name = "rumor"
	}
	if rel.Namespace == "" {
		rel.Namespace = "streams"
	}
	ch := loadChart(tb)
	vals, err := chartutil.ReadValues([]byte(rel.Values))
	if err != nil {
		tb.Fatalf("values %q: %v", rel.Values, err)
	}
	top, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{
		Name:      rel.Name,
		Namespace: rel.Namespace,
		Revision:  map[bool]int{false: 1, true: 2}[rel.Upgrade],
		IsInstall: !rel.Upgrade,
		IsUpgrade: rel.Upgrade,
	}, capabilities())
	if err != nil {
		return nil, err
	}
	cp := newFakeCluster(tb, rel.Cluster...)
	files, err := engine.RenderWithClientProvider(ch, top, cp)
	if err != nil {
		return nil, err
	}
	out := &rendered{Files: map[string]string{}, Lookups: cp.calls}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		// Helm keeps partials and NOTES.txt out of the manifest.
		if !strings.HasSuffix(name, ".yaml") {
			out.Files[name] = files[name]
			continue
		}
		out.Files[name] = files[name]
		docs := releaseutil.SplitManifests(files[name])
		for _, key := range slices.Sorted(maps.Keys(docs)) {
			doc := docs[key]
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			o, err := decodeStrict(name, []byte(doc))
			if err != nil {
				return nil, err
			}
			out.Objects = append(out.Objects, o)
		}
	}
	return out, nil
}

func mustRender(tb testing.TB, rel release) *rendered {
	tb.Helper()
	r, err := renderRelease(tb, rel)
	if err != nil {
		tb.Fatalf("render with values %.80q: %v", rel.Values, err)
	}
	return r
}

func stripComments(doc string) string {
	var b strings.Builder
	for line := range strings.Lines(doc) {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// kinds maps every apiVersion/kind the chart may render to the Go type it must
// decode into. Anything else fails the test.
var kinds = map[string]func() any{
	"apps/v1/Deployment": func() any { return new(appsv1.Deployment) },
	"v1/Service":         func() any { return new(corev1.Service) },
	"v1/Secret":          func() any { return new(corev1.Secret) },
	"v1/ServiceAccount":  func() any { return new(corev1.ServiceAccount) },
	"v1/Pod":             func() any { return new(corev1.Pod) },
	"v1/ConfigMap":       func() any { return new(corev1.ConfigMap) },
	"monitoring.coreos.com/v1/PrometheusRule": func() any { return new(monitoringv1.PrometheusRule) },
	"policy/v1/PodDisruptionBudget":           func() any { return new(policyv1.PodDisruptionBudget) },
	"autoscaling/v2/HorizontalPodAutoscaler":  func() any { return new(autoscalingv2.HorizontalPodAutoscaler) },
	"networking.k8s.io/v1/Ingress":            func() any { return new(networkingv1.Ingress) },
	"gateway.networking.k8s.io/v1/HTTPRoute":  func() any { return new(gatewayv1.HTTPRoute) },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return new(monitoringv1.ServiceMonitor) },
}

// decodeStrict turns one YAML document into its typed object. It fails on
// duplicate keys (sigs.k8s.io/yaml's strict conversion), unknown fields
// (DisallowUnknownFields), wrong types (encoding/json), and trailing data.
func decodeStrict(file string, doc []byte) (object, error) {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return object{}, fmt.Errorf("%s: %w\n%s", file, err, doc)
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(js, &tm); err != nil {
		return object{}, fmt.Errorf("%s: %w", file, err)
	}
	newObj, ok := kinds[tm.APIVersion+"/"+tm.Kind]
	if !ok {
		return object{}, fmt.Errorf("%s: unexpected object %s %s", file, tm.APIVersion, tm.Kind)
	}
	obj := newObj()
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		return object{}, fmt.Errorf("%s: %s: %w\n%s", file, tm.Kind, err, doc)
	}
	if dec.More() {
		return object{}, fmt.Errorf("%s: trailing data after the object", file)
	}
	name := obj.(metav1.Object).GetName()
	return object{File: file, Kind: tm.Kind, Name: name, Obj: obj}, nil
}

// fakeCluster answers helm's `lookup` from a fake dynamic client, and counts
// the calls so a test can tell that lookup really ran.
type fakeCluster struct {
	client dynamic.Interface
	calls  int
}

var _ engine.ClientProvider = (*fakeCluster)(nil)

func newFakeCluster(tb testing.TB, objs ...runtime.Object) *fakeCluster {
	tb.Helper()
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		tb.Fatal(err)
	}
	return &fakeCluster{client: dynamicfake.NewSimpleDynamicClient(scheme, objs...)}
}

func (c *fakeCluster) GetClientFor(apiVersion, kind string) (dynamic.NamespaceableResourceInterface, bool, error) {
	c.calls++
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return nil, false, err
	}
	// The chart only looks up Secrets; a real cluster would use discovery here.
	if gv.String() != "v1" || kind != "Secret" {
		return nil, false, fmt.Errorf("lookup of %s %s is not simulated", apiVersion, kind)
	}
	return c.client.Resource(gv.WithResource("secrets")), true, nil
}

// Typed accessors over a render.

func (r *rendered) all(kind string) []object {
	var out []object
	for _, o := range r.Objects {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

func (r *rendered) kinds() []string {
	var out []string
	for _, o := range r.Objects {
		out = append(out, o.Kind)
	}
	sort.Strings(out)
	return out
}

func one[T any](tb testing.TB, r *rendered, kind string) T {
	tb.Helper()
	objs := r.all(kind)
	if len(objs) != 1 {
		tb.Fatalf("rendered %d %s objects, want 1 (kinds: %v)", len(objs), kind, r.kinds())
	}
	return objs[0].Obj.(T)
}

func (r *rendered) deployment(tb testing.TB) *appsv1.Deployment {
	tb.Helper()
	return one[*appsv1.Deployment](tb, r, "Deployment")
}

func (r *rendered) service(tb testing.TB, name string) *corev1.Service {
	tb.Helper()
	for _, o := range r.all("Service") {
		if o.Name == name {
			return o.Obj.(*corev1.Service)
		}
	}
	tb.Fatalf("no Service %q", name)
	return nil
}

func (r *rendered) secret(name string) *corev1.Secret {
	for _, o := range r.all("Secret") {
		if o.Name == name {
			return o.Obj.(*corev1.Secret)
		}
	}
	return nil
}

// services returns the release's Services by role: the headless one carries
// gossip, the one named like the Deployment the HTTP API, and the one named
// like the Deployment plus "-admin" the admin listener (nil without
// admin.enabled). Any other Service fails the test.
func (r *rendered) services(tb testing.TB) (http, gossip, admin *corev1.Service) {
	tb.Helper()
	name := r.deployment(tb).Name
	for _, o := range r.all("Service") {
		s := o.Obj.(*corev1.Service)
		switch {
		case s.Spec.ClusterIP == corev1.ClusterIPNone:
			if gossip != nil {
				tb.Fatalf("two headless Services: %s and %s", gossip.Name, s.Name)
			}
			gossip = s
		case s.Name == name:
			http = s
		case s.Name == name+"-admin":
			admin = s
		default:
			tb.Fatalf("Service %s is none of %s, %s-admin or a headless gossip Service", s.Name, name, name)
		}
	}
	if http == nil || gossip == nil {
		tb.Fatalf("want an HTTP Service and a headless gossip Service; got %v", r.all("Service"))
	}
	return http, gossip, admin
}

func container(tb testing.TB, d *appsv1.Deployment) *corev1.Container {
	tb.Helper()
	cs := d.Spec.Template.Spec.Containers
	if len(cs) != 1 || cs[0].Name != "rumor" {
		tb.Fatalf("Deployment %s: want one container named rumor, got %d", d.Name, len(cs))
	}
	return &cs[0]
}

// env returns the container's variables by name, failing on duplicates: with
// two entries of one name, Kubernetes silently keeps the last.
func env(tb testing.TB, c *corev1.Container) map[string]corev1.EnvVar {
	tb.Helper()
	m := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		if _, dup := m[e.Name]; dup {
			tb.Errorf("env %s is set twice", e.Name)
		}
		m[e.Name] = e
	}
	return m
}

func containerPort(c *corev1.Container, name string) *corev1.ContainerPort {
	for i := range c.Ports {
		if c.Ports[i].Name == name {
			return &c.Ports[i]
		}
	}
	return nil
}

// selects reports whether selector picks a pod with the given labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}
