package main

import (
	"strings"
	"testing"
	"time"
)

// Ensure a DLQ_SEAL_KEY_FILE that holds a passphrase (32 printable bytes)
// or filler stops `consumer run` and `dlq replay` with one line naming the
// setting and the file and saying how to make a key, without showing what
// the file holds; a random key and its hex form are accepted.
func TestSealKeyFileRefusesPassphrase(t *testing.T) {
	const passphrase = "correct horse battery staple 42!" // 32 bytes
	for _, tc := range []struct{ name, content string }{
		{"passphrase", passphrase},
		{"zeros", string(make([]byte, 32))},
	} {
		key := writeFile(t, tc.name+".key", tc.content)
		for _, args := range [][]string{{"run"}, {"dlq", "replay", "--yes"}} {
			res := runCLI(t, 10*time.Second, map[string]string{"DLQ_SEAL_KEY_FILE": key, "NATS_URL": "nats://127.0.0.1:1"}, "", args...)
			if res.code != 2 {
				t.Errorf("%s: consumer %q exit code = %d; want 2 (stderr %q)", tc.name, args, res.code, res.stderr)
			}
			wantOneLine(t, res, "DLQ_SEAL_KEY_FILE", key, "passphrase", "head -c 32 /dev/urandom", "openssl rand -hex 32")
			if tc.name == "passphrase" && (strings.Contains(res.stderr, "correct horse") || strings.Contains(res.stdout, "correct horse")) {
				t.Errorf("consumer %q shows the file's content: %q", args, res.stderr)
			}
		}
	}
	random := writeFile(t, "random.key", "\x8f\x12\xc4\x07\x9a\xee\x31\x5b\x60\xd2\x44\x1f\xa8\x73\x0c\xb9\x56\xe1\x2a\x9d\x03\x7c\xf4\x68\xbb\x15\x4e\x90\xc7\x3a\x81\xdf")
	hexKey := writeFile(t, "hex.key", "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a\n")
	for _, key := range []string{random, hexKey} {
		if _, err := parse(map[string]string{"DLQ_SEAL_KEY_FILE": key}); err != nil {
			t.Errorf("parseConfig(DLQ_SEAL_KEY_FILE=%s) = %v; want the key accepted", key, err)
		}
	}
}
