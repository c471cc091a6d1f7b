package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/password"
	"github.com/zoomprov/consumer/testenv"
)

// newPasswordKey writes a fresh private key to a file and returns the
// file and the keyring it makes.
func newPasswordKey(t *testing.T) (string, *password.Keyring) {
	t.Helper()
	k := make([]byte, password.KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	keys, err := password.New(k)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "password.key", string(k)), keys
}

// Ensure `consumer password public-key` prints the public key of the first
// PASSWORD_KEY_FILE key (and its id with --json), and that a missing or
// bad key is one line and exit 2.
func TestPasswordPublicKey(t *testing.T) {
	file, keys := newPasswordKey(t)
	want := password.EncodePublicKey(keys.PublicKey())
	for _, tc := range []struct {
		env  map[string]string
		args []string
	}{
		{map[string]string{"PASSWORD_KEY_FILE": file}, nil},
		{nil, []string{"--password-key-file", file}},
		{map[string]string{"PASSWORD_KEY_FILE": file + "," + file}, nil},
	} {
		res := runCLI(t, 5*time.Second, tc.env, "", append([]string{"password", "public-key"}, tc.args...)...)
		if res.code != 0 || res.stdout != want+"\n" || res.stderr != "" {
			t.Errorf("consumer password public-key %q (env %v) = %d, %q, %q; want 0 and %s", tc.args, tc.env, res.code, res.stdout, res.stderr, want)
		}
	}
	res := runCLI(t, 5*time.Second, map[string]string{"PASSWORD_KEY_FILE": file}, "", "password", "public-key", "--json")
	var got publicKeyJSON
	if err := json.Unmarshal([]byte(res.stdout), &got); err != nil || got.PublicKey != want || got.KeyID != password.KeyID(keys.PublicKey()) {
		t.Errorf("consumer password public-key --json = %q, %v; want key %s, id %s", res.stdout, err, want, password.KeyID(keys.PublicKey()))
	}

	passphrase := writeFile(t, "passphrase.key", "correct horse battery staple 42!")
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"password", "public-key"}, "PASSWORD_KEY_FILE"},
		{map[string]string{"PASSWORD_KEY_FILE": passphrase}, []string{"password", "public-key"}, "head -c 32 /dev/urandom"},
		{nil, []string{"password", "private-key"}, "public-key"},
		{nil, []string{"password", "public-key", "extra"}, "extra"},
	} {
		res := runCLI(t, 5*time.Second, tc.env, "", tc.args...)
		if res.code != 2 || res.stdout != "" {
			t.Errorf("consumer %q = %d, stdout %q; want exit 2 and nothing", tc.args, res.code, res.stdout)
		}
		wantOneLine(t, res, tc.want)
		if strings.Contains(res.stderr, "horse") {
			t.Errorf("consumer %q shows the key file's content: %q", tc.args, res.stderr)
		}
	}
}

// Ensure `consumer publish` given the service's public key (a file, or
// PASSWORD_PUBLIC_KEY) seals an autoCreate password before publishing: the
// request stream, as the server returns it and on disk, holds the sealed
// password and never the plain one, and the service's key opens it. With
// --seal-password=false the password is published as it is (which shows
// the search would find it).
func TestPublishSealsPassword(t *testing.T) {
	ns := startNATS(t)
	_, js := connectJS(t, ns.URL())
	provisionStreams(t, js, 30*time.Second)
	keyFile, keys := newPasswordKey(t)
	pubFile := writeFile(t, "public.key", password.EncodePublicKey(keys.PublicKey())+"\n")

	const plain = "Pl41n-Publish-Pw!"
	body := writeFile(t, "body.json", `{"action":"autoCreate","user_info":"{\"email\":\"pat@example.com\",\"type\":1,\"password\":\"`+plain+`\"}"}`)
	env := map[string]string{"NATS_URL": ns.URL()}
	for _, tc := range []struct {
		id   string
		env  map[string]string
		args []string
	}{
		{"sealed-by-file", env, []string{"--password-public-key", pubFile}},
		{"sealed-by-env", map[string]string{"NATS_URL": ns.URL(), "PASSWORD_PUBLIC_KEY": password.EncodePublicKey(keys.PublicKey())}, nil},
	} {
		res := runCLI(t, 10*time.Second, tc.env, "", append([]string{"publish", "--file", body, "--msg-id", tc.id}, tc.args...)...)
		if res.code != 0 {
			t.Fatalf("consumer publish %s = %d, %q; want 0", tc.id, res.code, res.stderr)
		}
	}
	stored, err := testenv.StreamBytes(context.Background(), js, "ZOOM_USERS")
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		files, err := testenv.StreamFiles(ns.StoreDir(), "ZOOM_USERS")
		return err == nil && bytes.Count(files, []byte(password.Prefix+password.KeyID(keys.PublicKey()))) >= 2, "the sealed requests are not in the stream's files yet"
	})
	files, err := testenv.StreamFiles(ns.StoreDir(), "ZOOM_USERS")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stored, []byte(plain)) || bytes.Contains(files, []byte(plain)) {
		t.Errorf("the request stream holds the password in plain text")
	}
	s, err := js.Stream(context.Background(), "ZOOM_USERS")
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 2; seq++ {
		m, err := s.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		req, err := messages.Decode(m.Data)
		if err != nil {
			t.Fatalf("stored request %s = %v; want a valid request", m.Data, err)
		}
		if got, err := keys.Open(req.UserInfo.Password); err != nil || got != plain {
			t.Errorf("the service's key opens the stored password to %q, %v; want the password published", got, err)
		}
	}
	// The service's own key file, given in place of the public key, is
	// no public key: one line, exit 2.
	res := runCLI(t, 10*time.Second, env, "", "publish", "--file", body, "--password-public-key", keyFile)
	if res.code != 2 {
		t.Errorf("consumer publish --password-public-key <private key file> = %d; want 2", res.code)
	}
	wantOneLine(t, res, "--password-public-key", "consumer password public-key")

	res = runCLI(t, 10*time.Second, env, "", "publish", "--file", body, "--msg-id", "unsealed", "--password-public-key", pubFile, "--seal-password=false")
	if res.code != 0 {
		t.Fatalf("consumer publish --seal-password=false = %d, %q", res.code, res.stderr)
	}
	if stored, _ := testenv.StreamBytes(context.Background(), js, "ZOOM_USERS"); !bytes.Contains(stored, []byte(plain)) {
		t.Errorf("the stream does not hold the password published unsealed; the search cannot find one")
	}
}
