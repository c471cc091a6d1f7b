package deadletter_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/zoomprov/consumer/internal/deadletter"
	"github.com/zoomprov/consumer/internal/seal"
)

func keyring(t testing.TB, b byte) *seal.Keyring {
	t.Helper()
	k, err := seal.New(bytes.Repeat([]byte{b}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

const (
	password = "Zx9!kq2Lm"
	body     = `{"action":"autoCreate","user_info":{"email":"pat@example.com","type":1,"password":"Zx9!kq2Lm"}}`
	// stringBody sends user_info as a string holding JSON.
	stringBody = `{"action":"autoCreate","user_info":"{\"email\":\"sam@example.com\",\"type\":1,\"password\":\"Zx9!kq2Lm\"}"}`
)

// Ensure Seal seals every password with the first key and says so in the
// header, and Open gives the body back byte for byte.
func TestSealOpen(t *testing.T) {
	keys := keyring(t, 1)
	for _, in := range []string{body, stringBody} {
		h := deadletter.Header{RequestID: "req-1"}
		out, err := h.Seal(keys, []byte(in))
		if err != nil || bytes.Contains(out, []byte(password)) || h.Password != deadletter.PasswordSealed || h.SealKey != keys.ID() {
			t.Fatalf("Seal(%s) = %s, header %q %q; want the password sealed with %s", in, out, h.Password, h.SealKey, keys.ID())
		}
		back, err := h.Open(keys, out)
		if err != nil || string(back) != in {
			t.Errorf("Open(Seal(%s)) = %s, %v; want the body as it was", in, back, err)
		}
	}
}

// Ensure a body without a password is kept as it is, with no password
// headers, and opens as it is.
func TestSealNoPassword(t *testing.T) {
	in := []byte(`{"action":"ssoCreate","user_info":{"email":"a@example.com","type":1}}`)
	for _, keys := range []*seal.Keyring{nil, keyring(t, 1)} {
		h := deadletter.Header{RequestID: "req-1"}
		if out, err := h.Seal(keys, in); err != nil || !bytes.Equal(out, in) || h.Password != "" || h.SealKey != "" {
			t.Errorf("Seal(%s) = %s, header %q %q; want the body and no password header", in, out, h.Password, h.SealKey)
		}
		if out, err := h.Open(nil, in); err != nil || !bytes.Equal(out, in) {
			t.Errorf("Open(%s) = %s, %v; want the body", in, out, err)
		}
	}
}

// Ensure Seal without keys redacts, and Open refuses what was redacted.
func TestSealRedacts(t *testing.T) {
	h := deadletter.Header{RequestID: "req-1"}
	out, err := h.Seal(nil, []byte(body))
	if want := strings.Replace(body, password, deadletter.PasswordRedacted, 1); string(out) != want || h.Password != deadletter.PasswordRedacted || h.SealKey != "" || err != nil {
		t.Fatalf("Seal(nil) = %s, header %q %q, %v; want %s, redacted, no key, no error", out, h.Password, h.SealKey, err, want)
	}
	if _, err := h.Open(keyring(t, 1), out); !errors.Is(err, deadletter.ErrRedacted) {
		t.Errorf("Open(redacted) = %v; want ErrRedacted", err)
	}
}

// Ensure Open refuses without keys, with another key, a tampered token and
// a header that says sealed over a body that holds no token, and never
// shows the password.
func TestOpenRefuses(t *testing.T) {
	keys := keyring(t, 1)
	h := deadletter.Header{RequestID: "req-1"}
	sealed := mustSeal(t, &h, keys, body)
	tok := string(sealed[bytes.Index(sealed, []byte("sealed:")):bytes.LastIndexByte(sealed, '"')])
	tampered := []byte(strings.Replace(string(sealed), tok, tok[:len(tok)-2]+"AA", 1))
	tests := []struct {
		name string
		keys *seal.Keyring
		body []byte
		want error
	}{
		{"no keys", nil, sealed, deadletter.ErrNoKey},
		{"another key", keyring(t, 2), sealed, seal.ErrUnknownKey},
		{"tampered", keys, tampered, seal.ErrTampered},
		{"no token", keys, []byte(body), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := h.Open(tc.keys, tc.body)
			if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Open = %s, %v; want an error matching %v", out, err, tc.want)
			}
			if !bytes.Equal(out, tc.body) {
				t.Errorf("Open = %s with an error; want the body as given", out)
			}
			if strings.Contains(err.Error(), password) || strings.Contains(err.Error(), tok) {
				t.Errorf("Open error %q shows the password or its token", err)
			}
		})
	}
}

// Ensure a sealed password opens only in its own dead letter and field: a
// token copied into another dead letter (another request id) or to
// another password member does not open, and the error says it may have
// been moved.
func TestSealedPasswordStaysPut(t *testing.T) {
	keys := keyring(t, 1)
	h := deadletter.Header{RequestID: "req-1"}
	sealed := mustSeal(t, &h, keys, body)
	tok := string(sealed[bytes.Index(sealed, []byte("sealed:")):bytes.LastIndexByte(sealed, '"')])

	other := h
	other.RequestID = "req-2"
	if _, err := other.Open(keys, sealed); !errors.Is(err, seal.ErrTampered) || !strings.Contains(err.Error(), "moved") {
		t.Errorf("Open in another dead letter = %v; want ErrTampered, saying it may have been moved", err)
	}
	moved := []byte(`{"action":"autoCreate","password":"` + tok + `","user_info":{"email":"pat@example.com","type":1}}`)
	if _, err := h.Open(keys, moved); !errors.Is(err, seal.ErrTampered) {
		t.Errorf("Open of the token moved to another field = %v; want ErrTampered", err)
	}
	if back, err := h.Open(keys, sealed); err != nil || string(back) != body {
		t.Errorf("Open in place = %s, %v; want the body", back, err)
	}
	// The request id is bound as the Request-Id header carries it.
	parsed, err := deadletter.Parse(toNATS(deadletter.Header{Reason: "not_found", RequestID: " req-1\r\n"}.Headers()))
	if err != nil {
		t.Fatal(err)
	}
	h2 := deadletter.Header{RequestID: " req-1\r\n"}
	if back, err := parsed.Open(keys, mustSeal(t, &h2, keys, body)); err != nil || string(back) != body {
		t.Errorf("Open with the parsed header = %s, %v; want the body", back, err)
	}
}

// Ensure a dead letter sealed before tokens were bound to their dead
// letter (a sealed:v1: token) still opens for a replay.
func TestOpenVersion1DeadLetter(t *testing.T) {
	// Sealed with 32 bytes of 7 by the version 1 code.
	const v1 = "sealed:v1:45881e34:iGC9Kz5y1Gzz4pKpSKYG6MWO_Dw8dXM0WAG7g2EOQr9APkpu4CJG"
	h := deadletter.Header{RequestID: "any", Password: deadletter.PasswordSealed, SealKey: "45881e34"}
	in := strings.Replace(body, `"`+password+`"`, `"`+v1+`"`, 1)
	if back, err := h.Open(keyring(t, 7), []byte(in)); err != nil || string(back) != body {
		t.Errorf("Open(v1 dead letter) = %s, %v; want %s", back, err, body)
	}
}

// toNATS turns Headers into the map[string][]string shape of nats.Header.
func toNATS(h map[string]string) map[string][]string {
	out := make(map[string][]string, len(h))
	for k, v := range h {
		out[k] = []string{v}
	}
	return out
}

func mustSeal(t *testing.T, h *deadletter.Header, keys *seal.Keyring, body string) []byte {
	t.Helper()
	out, err := h.Seal(keys, []byte(body))
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return out
}

// Ensure a password that cannot be sealed (a keyring without a key) is
// redacted, as without keys, and reported with an error that matches
// ErrSealFailed and does not hold the password; a body without a password
// is no failure.
func TestSealFailureRedacts(t *testing.T) {
	broken := &seal.Keyring{}
	h := deadletter.Header{RequestID: "req-1"}
	out, err := h.Seal(broken, []byte(body))
	if want := strings.Replace(body, password, deadletter.PasswordRedacted, 1); string(out) != want || h.Password != deadletter.PasswordRedacted || h.SealKey != "" {
		t.Errorf("Seal(broken keyring) = %s, header %q %q; want %s, redacted, no key", out, h.Password, h.SealKey, want)
	}
	if !errors.Is(err, deadletter.ErrSealFailed) || strings.Contains(err.Error(), password) {
		t.Errorf("Seal(broken keyring) error = %v; want ErrSealFailed without the password", err)
	}
	if _, err := h.Seal(broken, []byte(`{"action":"create","user_info":{"email":"a@example.com"}}`)); err != nil {
		t.Errorf("Seal(broken keyring, no password) error = %v; want nil", err)
	}
}

// sealedBox is a password its publisher sealed for the service (the
// libsodium vector of internal/password), as a JSON string with its
// slashes escaped, as some encoders write them.
const sealedBox = `"sealedbox:v1:37a9bb05:WkdS0vmG6u25uWc1OZxeIi\/w\/YMcamS7iuOgUdFKyGS4QwuiYq3w+ivWf9+iEdswD\/v5NtuTtS3ydoAnro8="`

// Ensure a password the publisher sealed for the service is kept byte for
// byte, with or without keys, and counts for no password header, while a
// plain one beside it is sealed or redacted; and that Open gives the body
// back.
func TestSealKeepsSealedBox(t *testing.T) {
	only := `{"action":"autoCreate","user_info":{"email":"pat@example.com","type":1,"password":` + sealedBox + `}}`
	mixed := `{"action":"autoCreate","password":"` + password + `","user_info":"{\"email\":\"pat@example.com\",\"password\":` + strings.ReplaceAll(strings.ReplaceAll(sealedBox, `\`, `\\`), `"`, `\"`) + `}"}`
	for _, keys := range []*seal.Keyring{nil, keyring(t, 1)} {
		h := deadletter.Header{RequestID: "req-1"}
		out, err := h.Seal(keys, []byte(only))
		if err != nil || string(out) != only || h.Password != "" || h.SealKey != "" {
			t.Errorf("Seal(keys %q, sealed box only) = %s, header %q, %v; want the body as it is, no header", keys.ID(), out, h.Password, err)
		}
		if back, err := h.Open(nil, out); err != nil || string(back) != only {
			t.Errorf("Open(sealed box only) = %s, %v; want the body", back, err)
		}

		h = deadletter.Header{RequestID: "req-1"}
		out, err = h.Seal(keys, []byte(mixed))
		boxInString := strings.ReplaceAll(strings.ReplaceAll(sealedBox, `\`, `\\`), `"`, `\"`)
		if err != nil || bytes.Contains(out, []byte(password)) || !bytes.Contains(out, []byte(boxInString)) || h.Password == "" {
			t.Errorf("Seal(keys %q, mixed) = %s, header %q, %v; want the plain password replaced, the box kept", keys.ID(), out, h.Password, err)
		}
		if keys != nil {
			if back, err := h.Open(keys, out); err != nil || string(back) != mixed {
				t.Errorf("Open(mixed) = %s, %v; want %s", back, err, mixed)
			}
		}
	}
	if text, _ := deadletter.MaskBody([]byte(only)); strings.Contains(text, "sealedbox") {
		t.Errorf("MaskBody = %s; want the sealed box masked too", text)
	}
}
