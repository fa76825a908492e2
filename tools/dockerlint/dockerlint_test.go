package dockerlint

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/subrequests/lint"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	digest "github.com/opencontainers/go-digest"
)

// repoRoot is where the Dockerfile and .dockerignore live, relative to this
// package (go test runs in the package directory).
const repoRoot = "../.."

// TestDockerfileLint runs the checks that `docker build --check` runs: the same
// function (dockerfile2llb.DockerfileLint) that serves BuildKit's "frontend.lint"
// subrequest, over every stage, with every experimental rule on. Any warning or
// build error fails the test.
func TestDockerfileLint(t *testing.T) {
	dt := readFile(t, "Dockerfile")
	res := lintDockerfile(t, dt)
	for _, w := range res.Warnings {
		t.Errorf("%s", formatWarning(w))
	}
	if res.Error != nil {
		t.Errorf("build error: %s", res.Error.Message)
	}
}

// TestLintHarnessReportsWarnings guards the harness itself: a Dockerfile that
// breaks well-known rules must produce those warnings, or TestDockerfileLint
// would pass by never looking.
func TestLintHarnessReportsWarnings(t *testing.T) {
	bad := []byte(`# check=experimental=all
FROM golang:1.26 as Build
ENV CGO_ENABLED 0
copy . .
FROM gcr.io/distroless/static-debian12
COPY --from=Build /src/app /app
ENTRYPOINT /app
`)
	res := lintDockerfile(t, bad)
	var got []string
	for _, w := range res.Warnings {
		got = append(got, w.RuleName)
	}
	for _, want := range []string{
		linter.RuleConsistentInstructionCasing.Name,
		linter.RuleFromAsCasing.Name,
		linter.RuleStageNameCasing.Name,
		linter.RuleLegacyKeyValueFormat.Name,
		linter.RuleJSONArgsRecommended.Name,
	} {
		if !slices.Contains(got, want) {
			t.Errorf("linting a bad Dockerfile: no %s warning; got %v", want, got)
		}
	}
}

// TestCheckDirective keeps the `# check=` directive that makes a real
// `docker build` fail on any warning and turns on the experimental rules, the
// same set this test applies.
func TestCheckDirective(t *testing.T) {
	dt := readFile(t, "Dockerfile")
	v, _, _, ok := parser.ParseDirective("check", dt)
	if !ok {
		t.Fatal("Dockerfile has no `# check=` directive; want `# check=error=true;experimental=all`")
	}
	cfg, err := linter.ParseLintOptions(v)
	if err != nil {
		t.Fatalf("check directive %q: %v", v, err)
	}
	if !cfg.ReturnAsError || !cfg.ExperimentalAll || cfg.SkipAll || len(cfg.SkipRules) > 0 {
		t.Errorf("check directive %q: want error=true;experimental=all and no skipped rules", v)
	}
}

// TestCopySourcesNotIgnored does what BuildKit's experimental CopyIgnoredFile
// rule does during a real build: BuildKit only reads .dockerignore through a
// live build session, which this offline test does not have, so the rule is
// applied here with the same pattern matcher. It also checks that each COPY
// source from the build context exists.
func TestCopySourcesNotIgnored(t *testing.T) {
	f, err := os.Open(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatalf("read .dockerignore: %v", err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	for _, p := range []string{"go.mod", "go.sum", "cmd/rumor/main.go", "broker/hub.go", "web/stream.go", "web/ui/index.html", "transport/cluster.go"} {
		if ignored, err := pm.MatchesOrParentMatches(p); err != nil || ignored {
			t.Errorf(".dockerignore excludes %s, which the build needs (err %v)", p, err)
		}
	}
	for _, p := range []string{".git/config", "helm/rumor/values.yaml", "tools/dockerlint/go.mod", "web/stream_test.go", "e2e/doc.go", "docs/KUBERNETES.md"} {
		if ignored, err := pm.MatchesOrParentMatches(p); err != nil || !ignored {
			t.Errorf(".dockerignore lets %s into the build context (err %v)", p, err)
		}
	}

	stages := parseStages(t, readFile(t, "Dockerfile"))
	n := 0
	for _, st := range stages {
		for _, cmd := range st.Commands {
			c, ok := cmd.(*instructions.CopyCommand)
			if !ok || c.From != "" {
				continue
			}
			for _, src := range c.SourcePaths {
				n++
				src = filepath.ToSlash(filepath.Clean(src))
				if src != "." {
					if ignored, _ := pm.MatchesOrParentMatches(src); ignored {
						t.Errorf("%s: COPY source %q is excluded by .dockerignore", st.Name, src)
					}
				}
				if _, err := os.Stat(filepath.Join(repoRoot, src)); err != nil {
					t.Errorf("%s: COPY source %q: %v", st.Name, src, err)
				}
			}
		}
	}
	if n == 0 {
		t.Error("no COPY from the build context found")
	}
}

// TestImageContract checks what the linter cannot know: the image rumor's
// chart and docs rely on.
func TestImageContract(t *testing.T) {
	stages := parseStages(t, readFile(t, "Dockerfile"))
	if len(stages) < 2 {
		t.Fatalf("got %d stages, want a multi-stage build", len(stages))
	}

	pinned := regexp.MustCompile(`^[a-z0-9./-]+:[A-Za-z0-9._-]+@sha256:[a-f0-9]{64}$`)
	for _, st := range stages {
		if !pinned.MatchString(st.BaseName) {
			t.Errorf("stage %q: FROM %s: want a base image pinned by tag and digest", st.Name, st.BaseName)
		}
	}

	build := stages[0]
	var goBuild string
	for _, cmd := range build.Commands {
		if r, ok := cmd.(*instructions.RunCommand); ok && strings.Contains(strings.Join(r.CmdLine, " "), "go build") {
			goBuild = strings.Join(r.CmdLine, " ")
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-X=main.buildVersion=${VERSION}", "./cmd/rumor"} {
		if !strings.Contains(goBuild, want) {
			t.Errorf("build stage: go build command %q lacks %q", goBuild, want)
		}
	}

	final := stages[len(stages)-1]
	var (
		user                string
		entrypoint, command []string
		ports               []string
	)
	for _, cmd := range final.Commands {
		switch c := cmd.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.EntrypointCommand:
			if c.PrependShell {
				t.Errorf("ENTRYPOINT in shell form; the image has no shell")
			}
			entrypoint = c.CmdLine
		case *instructions.CmdCommand:
			if c.PrependShell {
				t.Errorf("CMD in shell form; the image has no shell")
			}
			command = c.CmdLine
		case *instructions.ExposeCommand:
			ports = append(ports, c.Ports...)
		case *instructions.RunCommand, *instructions.HealthCheckCommand:
			t.Errorf("final stage: %s needs a shell, which the image does not have", cmd.Name())
		}
	}
	if !regexp.MustCompile(`^[1-9][0-9]*(:[1-9][0-9]*)?$`).MatchString(user) {
		t.Errorf("final stage USER %q: want a numeric non-root uid (runAsNonRoot needs a number)", user)
	}
	if !slices.Equal(entrypoint, []string{"rumor"}) {
		t.Errorf("ENTRYPOINT %q, want [\"rumor\"]", entrypoint)
	}
	if !slices.Equal(command, []string{"serve"}) {
		t.Errorf("CMD %q, want [\"serve\"]", command)
	}
	for _, want := range []string{"8080/tcp", "7946/tcp", "7946/udp"} {
		if !slices.Contains(ports, want) {
			t.Errorf("EXPOSE %v lacks %s", ports, want)
		}
	}
}

// lintDockerfile runs BuildKit's lint over dt without a BuildKit daemon or a
// registry: base images resolve through stubResolver.
func lintDockerfile(tb testing.TB, dt []byte) *lint.LintResults {
	tb.Helper()
	ctx := context.Background()
	// The lint results point into the source by its LLB definition, as the
	// frontend does for a Dockerfile read from the client's local files.
	src := llb.Local("dockerfile")
	def, err := src.Marshal(ctx)
	if err != nil {
		tb.Fatalf("marshal Dockerfile source: %v", err)
	}
	smap := llb.NewSourceMap(&src, "Dockerfile", "Dockerfile", dt)
	smap.Definition = def
	res, err := dockerfile2llb.DockerfileLint(ctx, dt, dockerfile2llb.ConvertOpt{
		SourceMap:    smap,
		MetaResolver: stubResolver{},
	})
	if err != nil {
		tb.Fatalf("DockerfileLint: %v", err)
	}
	return res
}

// stubResolver answers every base image lookup with a minimal one-layer image
// for the requested platform, so linting never contacts a registry.
type stubResolver struct{}

var _ sourceresolver.ImageMetaResolver = stubResolver{}

func (stubResolver) ResolveImageConfig(_ context.Context, ref string, opt sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	cfg := map[string]any{
		"os":           "linux",
		"architecture": "amd64",
		"rootfs": map[string]any{
			"type":     "layers",
			"diff_ids": []string{digest.FromString(ref).String()},
		},
		"config": map[string]any{
			"Env": []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		},
	}
	if opt.ImageOpt != nil && opt.ImageOpt.Platform != nil {
		p := opt.ImageOpt.Platform
		cfg["os"], cfg["architecture"] = p.OS, p.Architecture
		if p.Variant != "" {
			cfg["variant"] = p.Variant
		}
	}
	dt, err := json.Marshal(cfg)
	return ref, "", dt, err
}

func parseStages(tb testing.TB, dt []byte) []instructions.Stage {
	tb.Helper()
	ast, err := parser.Parse(strings.NewReader(string(dt)))
	if err != nil {
		tb.Fatalf("parse Dockerfile: %v", err)
	}
	stages, _, err := instructions.Parse(ast.AST, nil)
	if err != nil {
		tb.Fatalf("parse Dockerfile instructions: %v", err)
	}
	return stages
}

func readFile(tb testing.TB, name string) []byte {
	tb.Helper()
	dt, err := os.ReadFile(filepath.Join(repoRoot, name))
	if err != nil {
		tb.Fatal(err)
	}
	return dt
}

func formatWarning(w lint.Warning) string {
	line := 0
	if w.Location != nil && len(w.Location.Ranges) > 0 {
		line = int(w.Location.Ranges[0].Start.Line)
	}
	msg := linter.LintFormatShort(w.RuleName, w.Detail, line)
	if w.URL != "" {
		msg += fmt.Sprintf(" - %s", w.URL)
	}
	return msg
}
