package main

import (
	"encoding/json"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// Ensure `consumer version` prints one line of text with the nats.go
// version under it, `--json` the same and the build information, and a
// usage mistake exits 2.
func TestVersion(t *testing.T) {
	res := runCLI(t, 5*time.Second, nil, "", "version")
	if want := "consumer dev (" + runtime.Version(); res.code != 0 || !strings.HasPrefix(res.stdout, want) || !strings.Contains(res.stdout, "\nnats.go v") {
		t.Errorf("consumer version = %d, %q; want 0 and %q..., then the nats.go version", res.code, res.stdout, want)
	}

	res = runCLI(t, 5*time.Second, nil, "", "version", "--json")
	if res.code != 0 {
		t.Fatalf("consumer version --json exit code = %d (stderr %q); want 0", res.code, res.stderr)
	}
	var v struct {
		Version  string            `json:"version"`
		Go       string            `json:"go"`
		OS       string            `json:"os"`
		Arch     string            `json:"arch"`
		NATSGo   string            `json:"nats_go"`
		Settings map[string]string `json:"build_settings"`
		Deps     []struct {
			Path, Version string
		} `json:"deps"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &v); err != nil {
		t.Fatalf("consumer version --json = %q: %v", res.stdout, err)
	}
	if v.Version != "dev" || v.Go != runtime.Version() || v.OS != runtime.GOOS || v.Arch != runtime.GOARCH || !strings.HasPrefix(v.NATSGo, "v") {
		t.Errorf("consumer version --json = %+v; want version dev, %s, %s/%s and nats.go's version", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	}
	if !slices.ContainsFunc(v.Deps, func(d struct{ Path, Version string }) bool {
		return d.Path == "github.com/nats-io/nats.go" && d.Version == v.NATSGo
	}) {
		t.Errorf("consumer version --json deps = %v; want nats.go %s among them", v.Deps, v.NATSGo)
	}
	if v.Settings == nil {
		t.Errorf("consumer version --json has no build_settings")
	}

	for _, args := range [][]string{{"version", "--bogus"}, {"version", "extra"}} {
		res := runCLI(t, 5*time.Second, nil, "", args...)
		if res.code != 2 || res.stdout != "" || strings.Count(res.stderr, "\n") != 1 {
			t.Errorf("consumer %q = %d, stdout %q, stderr %q; want exit 2 and one line", args, res.code, res.stdout, res.stderr)
		}
	}
}
