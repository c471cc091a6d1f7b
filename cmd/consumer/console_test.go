package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Ensure CONSOLE_TOKEN_FILE is read at start-up: a missing or malformed
// file stops `consumer run` with one line naming the setting (and the
// line of the file, never a secret), a good one passes `config check`.
func TestConsoleTokenSetting(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	zoom := map[string]string{"ZOOM_ACCOUNT_ID": "a", "ZOOM_CLIENT_ID": "c", "ZOOM_CLIENT_SECRET": "s", "NATS_URL": "nats://127.0.0.1:1"}
	for _, tc := range []struct {
		name, file, want string
	}{
		{"missing", filepath.Join(dir, "nope"), "no such file"},
		{"short secret", write("short", "ops:tooshort-secret\n"), "line 1 (ops)"},
		{"empty", write("empty", "# nobody\n"), "holds no token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := runCLI(t, 10*time.Second, merge(zoom, map[string]string{"CONSOLE_TOKEN_FILE": tc.file}), "", "run")
			lines := strings.Split(strings.TrimSpace(res.stderr), "\n")
			if res.code != 2 || len(lines) != 1 || !strings.Contains(lines[0], "CONSOLE_TOKEN_FILE") || !strings.Contains(lines[0], tc.want) {
				t.Errorf("run with CONSOLE_TOKEN_FILE %s = exit %d, stderr %q; want exit 2, one line naming CONSOLE_TOKEN_FILE and %q", tc.name, res.code, res.stderr, tc.want)
			}
			if strings.Contains(res.stderr, "tooshort-secret") {
				t.Errorf("the error shows the secret: %s", res.stderr)
			}
		})
	}
	good := write("good", "ops:0123456789abcdef0123456789\n")
	res := runCLI(t, 10*time.Second, merge(zoom, map[string]string{"CONSOLE_TOKEN_FILE": good}), "", "config", "check", "--timeout", "1s")
	if !strings.Contains(res.stdout, "console") || !strings.Contains(res.stdout, "console tokens: ops") || strings.Contains(res.stdout, "0123456789abcdef") {
		t.Errorf("config check with a good CONSOLE_TOKEN_FILE printed\n%s\nwant a console line naming the login ops and no secret", res.stdout)
	}
}
