package password_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/nacl/box"

	"github.com/zoomprov/consumer/internal/password"
)

const plain = "Zx9!kq2Lm"

// newKey returns a fresh random private key.
func newKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, password.KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func keyring(t testing.TB, keys ...[]byte) *password.Keyring {
	t.Helper()
	k, err := password.New(keys...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return k
}

// Ensure what Seal makes for the keyring's public key is well formed,
// holds no plain text, and opens to the password; a plain password is
// returned as it is.
func TestSealOpenRoundTrip(t *testing.T) {
	k := keyring(t, newKey(t))
	for _, p := range []string{plain, "äöü€😀-pässwörd", strings.Repeat("界", 32), "12345678"} {
		sealed, err := password.Seal(k.PublicKey(), p)
		if err != nil {
			t.Fatalf("Seal: %v", err)
		}
		if !strings.HasPrefix(sealed, password.Prefix+password.KeyID(k.PublicKey())+":") || !password.IsSealed(sealed) {
			t.Errorf("Seal = %q; want %s<key id>:<base64>", sealed, password.Prefix)
		}
		if err := password.Check(sealed); err != nil {
			t.Errorf("Check(Seal(%q)) = %v; want nil", p, err)
		}
		if strings.Contains(sealed, p) {
			t.Errorf("Seal = %q holds the password", sealed)
		}
		if got, err := k.Open(sealed); err != nil || got != p {
			t.Errorf("Open(Seal(%q)) = %q, %v; want the password", p, got, err)
		}
	}
	if got, err := k.Open(plain); err != nil || got != plain {
		t.Errorf("Open(plain) = %q, %v; want it as it is", got, err)
	}
	if got, err := (*password.Keyring)(nil).Open(plain); err != nil || got != plain {
		t.Errorf("nil keyring Open(plain) = %q, %v; want it as it is", got, err)
	}
}

// A test vector made by libsodium 1.0.18 itself (Debian's libsodium23,
// crypto_box_seal called through Python's ctypes): the private key is the
// SHA-256 of "zoomprov password test key", and the box holds
// "Zx9!kq2Lm-éè". The service must open what any libsodium binding seals.
const (
	vectorPublic = "mHSIigtBtplG/LGx4zIs5ZGJFCe9TYvBqmHejiN5nz0="
	vectorKeyID  = "37a9bb05"
	vectorBox    = "WkdS0vmG6u25uWc1OZxeIi/w/YMcamS7iuOgUdFKyGS4QwuiYq3w+ivWf9+iEdswD/v5NtuTtS3ydoAnro8="
)

func TestLibsodiumVector(t *testing.T) {
	sk := sha256.Sum256([]byte("zoomprov password test key"))
	k := keyring(t, sk[:])
	if got := password.EncodePublicKey(k.PublicKey()); got != vectorPublic {
		t.Fatalf("public key = %s; want libsodium's %s", got, vectorPublic)
	}
	if got := password.KeyID(k.PublicKey()); got != vectorKeyID {
		t.Errorf("KeyID = %s; want %s (SHA-256 of the public key, first 4 bytes)", got, vectorKeyID)
	}
	got, err := k.Open(password.Prefix + vectorKeyID + ":" + vectorBox)
	if err != nil || got != "Zx9!kq2Lm-éè" {
		t.Errorf("Open(libsodium's box) = %q, %v; want Zx9!kq2Lm-éè", got, err)
	}
}

// Ensure the key id is the first 4 bytes of the public key's SHA-256, so
// that a publisher in any language can compute it.
func TestKeyID(t *testing.T) {
	pub := keyring(t, newKey(t)).PublicKey()
	sum := sha256.Sum256(pub[:])
	if got, want := password.KeyID(pub), hex.EncodeToString(sum[:4]); got != want {
		t.Errorf("KeyID = %s; want %s", got, want)
	}
}

// Ensure a password sealed for a key the service does not hold, a
// damaged box, and a box holding no valid password are refused with
// ErrUnopenable, and errors never show a password, sealed or not.
func TestOpenRefuses(t *testing.T) {
	mine, other := newKey(t), newKey(t)
	k := keyring(t, mine)
	forOther, _ := password.Seal(keyring(t, other).PublicKey(), plain)
	good, _ := password.Seal(k.PublicKey(), plain)
	enc := good[strings.LastIndexByte(good, ':')+1:]
	raw, _ := base64.StdEncoding.DecodeString(enc)
	flipped := bytes.Clone(raw)
	flipped[len(flipped)-1] ^= 1
	prefix := password.Prefix + password.KeyID(k.PublicKey()) + ":"
	sealRaw := func(b []byte) string {
		out, err := box.SealAnonymous(nil, b, k.PublicKey(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return prefix + base64.StdEncoding.EncodeToString(out)
	}
	tests := []struct {
		name, sealed string
		want         string // in the error
	}{
		{"sealed for another key", forOther, "not among the service's password keys"},
		{"damaged", prefix + base64.StdEncoding.EncodeToString(flipped), "does not open"},
		{"relabelled for another id", password.Prefix + password.KeyID(keyring(t, other).PublicKey()) + ":" + enc, "not among"},
		{"too long once opened", sealRaw([]byte(strings.Repeat("x", 33))), "must be 8 to 32 characters"},
		{"not UTF-8", sealRaw([]byte("Zx9!kq2\xff\xfe")), "invalid UTF-8"},
		{"malformed", prefix + "!!" + enc, "well-formed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := k.Open(tc.sealed)
			if !errors.Is(err, password.ErrUnopenable) || got != "" || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %q, %v; want ErrUnopenable saying %q", got, err, tc.want)
			}
			if strings.Contains(err.Error(), plain) || strings.Contains(err.Error(), enc[:16]) || strings.Contains(err.Error(), "xxxxxxxx") {
				t.Errorf("Open error %q shows a password", err)
			}
		})
	}
	if _, err := (*password.Keyring)(nil).Open(good); !errors.Is(err, password.ErrUnopenable) || !strings.Contains(err.Error(), "PASSWORD_KEY_FILE") {
		t.Errorf("nil keyring Open(sealed) = %v; want ErrUnopenable naming PASSWORD_KEY_FILE", err)
	}
}

// Ensure Check accepts only the documented shape, with a box that can
// hold a password of 8 to 32 characters.
func TestCheck(t *testing.T) {
	pub := keyring(t, newKey(t)).PublicKey()
	good, _ := password.Seal(pub, plain)
	id := password.KeyID(pub)
	enc := good[strings.LastIndexByte(good, ':')+1:]
	short, _ := box.SealAnonymous(nil, []byte("1234567"), pub, rand.Reader)
	padded, _ := password.Seal(pub, "Zx9!kq2Lm0") // 58 bytes: "==" at the end
	if !strings.HasSuffix(padded, "==") {
		t.Fatalf("Seal of 10 bytes = %q; want padding", padded)
	}
	long, _ := box.SealAnonymous(nil, bytes.Repeat([]byte("x"), 129), pub, rand.Reader)
	// The id in upper case; a random key's id is all digits one time in
	// 43, and then its upper case is the id itself.
	upper := strings.ToUpper(id)
	if upper == id {
		upper = id[:7] + "A"
	}
	for _, bad := range []string{
		password.Prefix,
		password.Prefix + id,
		password.Prefix + id + ":",
		password.Prefix + upper + ":" + enc,
		password.Prefix + id[:7] + ":" + enc,
		strings.TrimRight(padded, "="),
		password.Prefix + id + ":" + enc + "=",
		password.Prefix + id + ":" + strings.NewReplacer("+", "-", "/", "_").Replace(enc) + "x",
		password.Prefix + id + ":" + enc[:10] + "\n" + enc[10:],
		password.Prefix + id + ":" + enc + " ",
		password.Prefix + id + ":" + base64.StdEncoding.EncodeToString(short),
		password.Prefix + id + ":" + base64.StdEncoding.EncodeToString(long),
		"sealedbox:v2:" + id + ":" + enc,
	} {
		if err := password.Check(bad); !errors.Is(err, password.ErrMalformed) {
			t.Errorf("Check(%q) = %v; want ErrMalformed", bad, err)
		}
	}
	if password.IsSealed("sealedbox:v2:x") || password.IsSealed(plain) {
		t.Error("IsSealed holds for a value without the prefix")
	}
}

// Ensure keys rotate: a keyring with a new key first still opens what was
// sealed for the old one, and publishes the new one.
func TestRotation(t *testing.T) {
	old, next := newKey(t), newKey(t)
	sealed, _ := password.Seal(keyring(t, old).PublicKey(), plain)
	both := keyring(t, next, old)
	if got, err := both.Open(sealed); err != nil || got != plain {
		t.Errorf("Open with (new, old) = %q, %v; want the password", got, err)
	}
	if *both.PublicKey() != *keyring(t, next).PublicKey() {
		t.Error("PublicKey of (new, old) is not the new key's")
	}
	if ids := both.IDs(); len(ids) != 2 || ids[0] != password.KeyID(keyring(t, next).PublicKey()) {
		t.Errorf("IDs = %q; want the new key's first", ids)
	}
}

// Ensure Load reads private keys as seal key files are read, refuses a
// passphrase, and names the file, never what it holds.
func TestLoad(t *testing.T) {
	dir := t.TempDir()
	k := newKey(t)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	raw, hexed := write("raw", k), write("hex", []byte(hex.EncodeToString(k)+"\n"))
	for _, p := range []string{raw, hexed, " " + raw} {
		got, err := password.Load(p)
		if err != nil || *got.PublicKey() != *keyring(t, k).PublicKey() {
			t.Errorf("Load(%s) = %v; want the key", p, err)
		}
	}
	pass := write("passphrase", []byte("correct horse battery staple 42!"))
	for _, p := range []string{pass, filepath.Join(dir, "missing"), ""} {
		_, err := password.Load(p)
		if err == nil || (p != "" && !strings.Contains(err.Error(), p)) || strings.Contains(err.Error(), "horse") {
			t.Errorf("Load(%q) = %v; want an error naming the file, not its content", p, err)
		}
	}
	if _, err := password.Load(); err == nil {
		t.Error("Load() succeeded; want an error")
	}
}

// Ensure a public key reads back from the forms `consumer password
// public-key` prints, and nothing else.
func TestParsePublicKey(t *testing.T) {
	pub := keyring(t, newKey(t)).PublicKey()
	for _, s := range []string{password.EncodePublicKey(pub), " " + password.EncodePublicKey(pub) + "\n", hex.EncodeToString(pub[:])} {
		got, err := password.ParsePublicKey(s)
		if err != nil || *got != *pub {
			t.Errorf("ParsePublicKey(%q) = %v; want the key", s, err)
		}
	}
	for _, s := range []string{"", "short", base64.RawStdEncoding.EncodeToString(pub[:]), base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32)), strings.Repeat("g", 64)} {
		if _, err := password.ParsePublicKey(s); err == nil {
			t.Errorf("ParsePublicKey(%q) succeeded; want an error", s)
		}
	}
}

// FuzzOpen: Open never panics; it returns a plain value as it is, and
// for a sealed one either the password sealed or an ErrUnopenable.
func FuzzOpen(f *testing.F) {
	k, err := password.New(bytes.Repeat([]byte{0xa7}, password.KeySize))
	if err != nil {
		f.Fatal(err)
	}
	sealed, _ := password.Seal(k.PublicKey(), plain)
	f.Add(sealed)
	f.Add(plain)
	f.Add(password.Prefix + password.KeyID(k.PublicKey()) + ":")
	f.Add(password.Prefix + vectorKeyID + ":" + vectorBox)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := k.Open(s)
		switch {
		case !password.IsSealed(s):
			if err != nil || got != s {
				t.Fatalf("Open(%q) = %q, %v; want it as it is", s, got, err)
			}
		case err != nil:
			if !errors.Is(err, password.ErrUnopenable) || got != "" {
				t.Fatalf("Open(%q) = %q, %v; want ErrUnopenable and nothing", s, got, err)
			}
		case password.Check(s) != nil:
			t.Fatalf("Open(%q) opened a value Check refuses", s)
		}
	})
}
