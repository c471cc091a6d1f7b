package main

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sandboxOnly are the packages only the sandbox needs; a build with
// -tags nosandbox must link none of them.
var sandboxOnly = []string{"github.com/nats-io/nats-server/v2", "github.com/zoomprov/consumer/testenv"}

// Ensure a build with -tags nosandbox (the production image's) links
// neither the embedded NATS server nor the Zoom simulator, and that its
// sandbox command answers with one line and exit 2. It builds the real
// binary, so it reuses the build cache of the other tests' packages.
func TestNoSandboxBuild(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("LookPath(go) = %v; want the go command, which builds the binary", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // against a hung go command only
	defer cancel()
	goCmd := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, goTool, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	// Without the tag the sandbox's packages are there: the check below can fail.
	for _, tc := range []struct {
		tags string
		want bool
	}{{"", true}, {"nosandbox", false}} {
		deps := strings.Fields(goCmd("list", "-deps", "-tags", tc.tags, "."))
		for _, pkg := range sandboxOnly {
			if got := hasPackage(deps, pkg); got != tc.want {
				t.Errorf("go list -deps -tags %q . has %s = %v; want %v", tc.tags, pkg, got, tc.want)
			}
		}
	}

	bin := filepath.Join(t.TempDir(), "consumer")
	goCmd("build", "-tags", "nosandbox", "-buildvcs=false", "-o", bin, ".")
	modules := goCmd("version", "-m", bin)
	if !strings.Contains(modules, "\tdep\tgithub.com/nats-io/nats.go\t") {
		t.Errorf("go version -m %s = %q; want it to list the modules (nats.go at least)", bin, modules)
	}
	if strings.Contains(modules, "\tdep\tgithub.com/nats-io/nats-server/v2\t") {
		t.Errorf("go version -m %s lists nats-server/v2; want it left out:\n%s", bin, modules)
	}

	const noSandbox = "consumer: sandbox is not in this build; use go run ./cmd/consumer sandbox\n"
	tests := []struct {
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{args: []string{"sandbox"}, wantCode: 2, wantStderr: noSandbox},
		{args: []string{"sandbox", "--exit-when-idle", "--nats-port", "0"}, wantCode: 2, wantStderr: noSandbox},
		{args: []string{"sandbox", "-h"}, wantCode: 2, wantStderr: noSandbox},
		// The rest of the binary still works.
		{args: []string{"version"}, wantCode: 0, wantStdout: "consumer dev ("},
	}
	for _, tc := range tests {
		var stdout, stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, bin, tc.args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		code := 0
		if err := cmd.Run(); err != nil {
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("run %s %q: %v", bin, tc.args, err)
			}
			code = ee.ExitCode()
		}
		if code != tc.wantCode {
			t.Errorf("consumer %q (nosandbox) exit code = %d; want %d", tc.args, code, tc.wantCode)
		}
		if got := stderr.String(); got != tc.wantStderr {
			t.Errorf("consumer %q (nosandbox) stderr = %q; want %q", tc.args, got, tc.wantStderr)
		}
		switch got := stdout.String(); {
		case tc.wantStdout == "" && got != "":
			t.Errorf("consumer %q (nosandbox) stdout = %q; want nothing", tc.args, got)
		case !strings.HasPrefix(got, tc.wantStdout):
			t.Errorf("consumer %q (nosandbox) stdout = %q; want it to start with %q", tc.args, got, tc.wantStdout)
		}
	}
}

// hasPackage reports whether deps holds pkg or a package below it.
func hasPackage(deps []string, pkg string) bool {
	for _, d := range deps {
		if d == pkg || strings.HasPrefix(d, pkg+"/") {
			return true
		}
	}
	return false
}
