package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// dockerfilePath is the production image's recipe.
const dockerfilePath = "../../deploy/Dockerfile"

// dockerStage is one FROM ... of the Dockerfile and the instructions under
// it, continuation lines joined.
type dockerStage struct {
	image, digest string
	lines         []string
}

func readDockerfile(t *testing.T) []dockerStage {
	t.Helper()
	b, err := os.ReadFile(dockerfilePath)
	if err != nil {
		t.Fatal(err)
	}
	text := regexp.MustCompile(`\\\n\s*`).ReplaceAllString(string(b), " ")
	from := regexp.MustCompile(`^FROM\s+(\S+?)(?:@(sha256:[0-9a-f]{64}))?(?:\s+AS\s+\S+)?$`)
	var stages []dockerStage
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if m := from.FindStringSubmatch(line); m != nil {
			stages = append(stages, dockerStage{image: m[1], digest: m[2]})
			continue
		}
		if strings.HasPrefix(line, "FROM") {
			t.Fatalf("%s: cannot read %q", dockerfilePath, line)
		}
		if len(stages) == 0 {
			t.Fatalf("%s: %q before the first FROM", dockerfilePath, line)
		}
		stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, line)
	}
	return stages
}

// Ensure deploy/Dockerfile pins every base image by digest, builds the
// production binary (-tags nosandbox) on the Go of go.mod with the version
// and revision stamped, and labels the image with the OCI annotations,
// version and revision from the build arguments.
func TestDockerfile(t *testing.T) {
	stages := readDockerfile(t)
	if len(stages) != 2 {
		t.Fatalf("%s has %d stages; want build and run", dockerfilePath, len(stages))
	}
	for _, s := range stages {
		if s.digest == "" {
			t.Errorf("%s: FROM %s is not pinned by digest (@sha256:...)", dockerfilePath, s.image)
		}
	}
	build, final := stages[0], stages[1]

	goMod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(goMod)
	if goVersion == nil || !strings.HasPrefix(build.image, "golang:"+string(goVersion[1])) {
		t.Errorf("%s builds with %s; want golang:%s as go.mod", dockerfilePath, build.image, goVersion[1])
	}
	var goBuild string
	for _, l := range build.lines {
		if strings.HasPrefix(l, "RUN go build") {
			goBuild = l
		}
	}
	for _, want := range []string{"-tags nosandbox", "-X main.version=${VERSION}", "-X main.revision=${REVISION}", "./cmd/consumer"} {
		if !strings.Contains(goBuild, want) {
			t.Errorf("%s: the go build %q lacks %s", dockerfilePath, goBuild, want)
		}
	}

	labels := map[string]string{}
	args := map[string]bool{}
	label := regexp.MustCompile(`(org\.opencontainers\.image\.[a-z.]+)="([^"]*)"`)
	for _, l := range final.lines {
		if a, ok := strings.CutPrefix(l, "ARG "); ok {
			name, _, _ := strings.Cut(a, "=")
			args[name] = true
		}
		if strings.HasPrefix(l, "LABEL ") {
			for _, m := range label.FindAllStringSubmatch(l, -1) {
				labels[m[1]] = m[2]
			}
		}
	}
	want := map[string]string{
		"org.opencontainers.image.version":     "${VERSION}",
		"org.opencontainers.image.revision":    "${REVISION}",
		"org.opencontainers.image.created":     "${CREATED}",
		"org.opencontainers.image.licenses":    "Apache-2.0",
		"org.opencontainers.image.base.name":   final.image,
		"org.opencontainers.image.base.digest": final.digest,
	}
	for k, v := range want {
		if labels[k] != v {
			t.Errorf("%s: label %s = %q; want %q", dockerfilePath, k, labels[k], v)
		}
	}
	for _, k := range []string{"title", "description", "source", "url", "documentation", "vendor"} {
		if labels["org.opencontainers.image."+k] == "" {
			t.Errorf("%s: no label org.opencontainers.image.%s", dockerfilePath, k)
		}
	}
	for _, a := range []string{"VERSION", "REVISION", "CREATED"} {
		if !args[a] {
			t.Errorf("%s: the run stage does not declare ARG %s, so its label would be empty", dockerfilePath, a)
		}
	}
	if !slices.Contains(final.lines, "USER nonroot") || !slices.Contains(final.lines, `ENTRYPOINT ["/consumer"]`) {
		t.Errorf("%s: the run stage must run /consumer as nonroot", dockerfilePath)
	}

	// The -ldflags of the Dockerfile set what `version --json` reports.
	ldflags := regexp.MustCompile(`-ldflags "([^"]*)"`).FindStringSubmatch(goBuild)
	if ldflags == nil {
		t.Fatalf("%s: no -ldflags in %q", dockerfilePath, goBuild)
	}
	flags := strings.NewReplacer("${VERSION}", "v9.8.7", "${REVISION}", "0123abc").Replace(ldflags[1])
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // against a hung go command only
	defer cancel()
	bin := filepath.Join(t.TempDir(), "consumer")
	if out, err := exec.CommandContext(ctx, "go", "build", "-tags", "nosandbox", "-buildvcs=false", "-ldflags", flags, "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build -ldflags %q: %v\n%s", flags, err, out)
	}
	out, err := exec.CommandContext(ctx, bin, "version", "--json").Output()
	if err != nil {
		t.Fatalf("%s version --json: %v", bin, err)
	}
	var v struct{ Version, Revision string }
	if err := json.Unmarshal(out, &v); err != nil || v.Version != "v9.8.7" || v.Revision != "0123abc" {
		t.Errorf("version --json of a binary built with the Dockerfile's -ldflags = %s (%v); want version v9.8.7, revision 0123abc", out, err)
	}
}
