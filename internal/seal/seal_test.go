package seal_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/zoomprov/consumer/internal/seal"
)

// ctx is the context the tests seal under, as a dead letter's would be.
var ctx = []byte("5:req-1:user_info.password")

// key returns a key whose bytes are all b.
func key(b byte) []byte { return bytes.Repeat([]byte{b}, seal.KeySize) }

// distinct returns n bytes that are easy to find in a text: no two
// positions hold the same byte.
func distinct(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(0xa0 + i)
	}
	return b
}

func keyring(t testing.TB, keys ...[]byte) *seal.Keyring {
	t.Helper()
	k, err := seal.New(keys...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return k
}

func TestSealOpenRoundTrip(t *testing.T) {
	k := keyring(t, key(1))
	for _, plain := range [][]byte{[]byte(`"Zx9!kq2Lm"`), {}, []byte("\x00\xff"), bytes.Repeat([]byte("x"), 5000)} {
		tok, err := k.Seal(plain, ctx)
		if err != nil {
			t.Fatalf("Seal: %v", err)
		}
		if !strings.HasPrefix(tok, seal.Prefix+k.ID()+":") {
			t.Errorf("token %q; want %s%s:<ciphertext>", tok, seal.Prefix, k.ID())
		}
		if len(plain) > 3 && strings.Contains(tok, string(plain)) {
			t.Errorf("token %q holds the plain text", tok)
		}
		got, err := k.Open(tok, ctx)
		if err != nil || !bytes.Equal(got, plain) {
			t.Errorf("Open(Seal(%q)) = %q, %v", plain, got, err)
		}
		if id, ok := seal.TokenKeyID(tok); !ok || id != k.ID() {
			t.Errorf("TokenKeyID = %q, %v; want %q", id, ok, k.ID())
		}
	}
}

// Ensure every seal takes a fresh nonce: equal passwords must not give
// equal tokens, which would show that two users share one.
func TestSealFreshNonce(t *testing.T) {
	k := keyring(t, key(1))
	seen := map[string]bool{}
	for range 100 {
		tok, err := k.Seal([]byte("same"), ctx)
		if err != nil {
			t.Fatal(err)
		}
		if seen[tok] {
			t.Fatalf("Seal gave %q twice", tok)
		}
		seen[tok] = true
	}
}

// Ensure keys rotate: sealed with the old key, opened once the new one
// is added in front; the new one seals from then on; without the old one
// the error names it.
func TestRotation(t *testing.T) {
	old, next := key(1), key(2)
	tok, err := keyring(t, old).Seal([]byte("secret"), ctx)
	if err != nil {
		t.Fatal(err)
	}
	both := keyring(t, next, old)
	if got, err := both.Open(tok, ctx); err != nil || string(got) != "secret" {
		t.Errorf("Open with (new, old) = %q, %v; want secret", got, err)
	}
	if both.ID() != seal.KeyID(next) {
		t.Errorf("ID = %s; want the new key's %s (the first seals)", both.ID(), seal.KeyID(next))
	}
	if tok2, _ := both.Seal([]byte("x"), ctx); !strings.HasPrefix(tok2, seal.Prefix+seal.KeyID(next)+":") {
		t.Errorf("Seal with (new, old) = %q; want it sealed with the new key", tok2)
	}
	_, err = keyring(t, next).Open(tok, ctx)
	want := "seal: sealed with key " + seal.KeyID(old) + ", which is not among the keys given"
	if !errors.Is(err, seal.ErrUnknownKey) || err.Error() != want {
		t.Errorf("Open without the old key = %v; want ErrUnknownKey, %q", err, want)
	}
}

func TestNilKeyring(t *testing.T) {
	var none *seal.Keyring
	tok, _ := keyring(t, key(1)).Seal([]byte("secret"), ctx)
	if got, err := none.Open(tok, ctx); !errors.Is(err, seal.ErrUnknownKey) || got != nil {
		t.Errorf("nil keyring Open = %q, %v; want ErrUnknownKey", got, err)
	}
	if _, err := none.Seal([]byte("x"), ctx); err == nil {
		t.Error("nil keyring Seal succeeded; want an error")
	}
	if _, err := (&seal.Keyring{}).Seal([]byte("x"), ctx); err == nil {
		t.Error("zero keyring Seal succeeded; want an error")
	}
	if id := none.ID(); id != "" {
		t.Errorf("nil keyring ID = %q; want empty", id)
	}
}

func TestOpenRefusesTampering(t *testing.T) {
	a, b := key(1), key(2)
	k := keyring(t, a, b)
	tok, err := k.Seal([]byte("secret"), ctx)
	if err != nil {
		t.Fatal(err)
	}
	prefix := seal.Prefix + seal.KeyID(a) + ":"
	body := tok[len(prefix):]
	raw, _ := base64.RawURLEncoding.DecodeString(body)
	flip := func(i int) string {
		c := bytes.Clone(raw)
		c[i] ^= 1
		return prefix + base64.RawURLEncoding.EncodeToString(c)
	}
	// The last character of a token carries 4 bits of the ciphertext and 2
	// padding bits; another character with the same 4 bits decodes to the
	// same bytes, unless the decoder is strict.
	last := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", tok[len(tok)-1])
	sameBits := tok[:len(tok)-1] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last^1])
	tests := []struct {
		name, tok string
		want      error
	}{
		{"ciphertext byte flipped", flip(len(raw) - 1), seal.ErrTampered},
		{"nonce byte flipped", flip(0), seal.ErrTampered},
		{"moved to the other key held", seal.Prefix + seal.KeyID(b) + ":" + body, seal.ErrTampered},
		{"truncated by a character", tok[:len(tok)-1], seal.ErrTampered},
		{"truncated by 4 characters", tok[:len(tok)-4], seal.ErrTampered},
		{"no ciphertext", prefix, seal.ErrTampered},
		{"shorter than a nonce and tag", prefix + "AAAA", seal.ErrTampered},
		{"not base64", prefix + "!!!!" + body, seal.ErrTampered},
		{"padded base64", tok + "==", seal.ErrTampered},
		{"standard base64 '+'", prefix + "+" + body[1:], seal.ErrTampered},
		{"standard base64 '/'", prefix + body[:5] + "/" + body[6:], seal.ErrTampered},
		{"line break inside", prefix + body[:10] + "\n" + body[10:], seal.ErrTampered},
		{"trailing line break", tok + "\n", seal.ErrTampered},
		{"padding bits changed", sameBits, seal.ErrTampered},
		{"extra colon", tok + ":", seal.ErrTampered},
		{"unknown key", seal.Prefix + "00000000:" + body, seal.ErrUnknownKey},
		{"plain text", "secret", seal.ErrNotSealed},
		{"empty", "", seal.ErrNotSealed},
		{"no key id", seal.Prefix + ":" + body, seal.ErrNotSealed},
		{"no colon after the id", seal.Prefix + seal.KeyID(a), seal.ErrNotSealed},
		{"upper-case id", seal.Prefix + strings.ToUpper(seal.KeyID(a)) + ":" + body, seal.ErrNotSealed},
		{"short id", seal.Prefix + seal.KeyID(a)[:7] + ":" + body, seal.ErrNotSealed},
		{"other version", "sealed:v3:" + seal.KeyID(a) + ":" + body, seal.ErrNotSealed},
		{"version 1", seal.PrefixV1 + seal.KeyID(a) + ":" + body, seal.ErrTampered},
		{"leading space", " " + tok, seal.ErrNotSealed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := k.Open(tc.tok, ctx)
			if !errors.Is(err, tc.want) || got != nil {
				t.Errorf("Open(%q) = %q, %v; want %v", tc.tok, got, err, tc.want)
			}
		})
	}
}

func TestTokenKeyID(t *testing.T) {
	tests := []struct {
		tok, want string
		ok        bool
	}{
		{seal.Prefix + "a1b2c3d4:xyz", "a1b2c3d4", true},
		{seal.Prefix + "a1b2c3d4:", "a1b2c3d4", true},
		{seal.Prefix + "a1b2c3d4", "", false},
		{seal.Prefix + "A1B2C3D4:x", "", false},
		{seal.Prefix + "a1b2c3d:x", "", false},
		{seal.Prefix + "a1b2c3d4e:x", "", false},
		{seal.Prefix + "a1b2\nc3d:x", "", false},
		{seal.PrefixV1 + "a1b2c3d4:xyz", "a1b2c3d4", true},
		{seal.PrefixV1 + "a1b2c3d:x", "", false},
		{"sealed:v3:a1b2c3d4:x", "", false},
		{"hunter2", "", false},
	}
	for _, tc := range tests {
		if id, ok := seal.TokenKeyID(tc.tok); id != tc.want || ok != tc.ok {
			t.Errorf("TokenKeyID(%q) = %q, %v; want %q, %v", tc.tok, id, ok, tc.want, tc.ok)
		}
	}
}

func TestKeyIDDeterministic(t *testing.T) {
	sum := sha256.Sum256(append([]byte("zoomprov seal key id v1"), key(5)...))
	want := hex.EncodeToString(sum[:4])
	if got := seal.KeyID(key(5)); got != want {
		t.Errorf("KeyID = %s; want %s", got, want)
	}
	if a, b := keyring(t, key(5)).ID(), keyring(t, key(5), key(6)).ID(); a != want || b != want {
		t.Errorf("ID = %s, %s; want %s from every keyring sealing with the key", a, b, want)
	}
	if seal.KeyID(key(5)) == seal.KeyID(key(6)) {
		t.Error("two keys have one id")
	}
	if id := seal.KeyID(key(5)); len(id) != 8 || strings.ToLower(id) != id {
		t.Errorf("KeyID = %q; want 8 lowercase hex digits", id)
	}
}

func TestNewRejects(t *testing.T) {
	k := distinct(31)
	tests := []struct {
		name string
		keys [][]byte
		want string // in the error
	}{
		{"no key", nil, "no key"},
		{"short", [][]byte{k}, "key 1 has 31 bytes; want 32"},
		{"long second", [][]byte{key(1), append(distinct(32), 0)}, "key 2 has 33 bytes; want 32"},
		{"empty third", [][]byte{key(1), key(2), {}}, "key 3 has 0 bytes; want 32"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := seal.New(tc.keys...)
			if err == nil || got != nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, %v; want an error saying %q", got, err, tc.want)
			}
			for _, key := range tc.keys {
				assertNoKey(t, err, key)
			}
		})
	}
}

// assertNoKey fails if err's text shows secret raw, in hex or in base64.
func assertNoKey(t *testing.T, err error, secret []byte) {
	t.Helper()
	if len(secret) < 4 {
		return
	}
	msg := err.Error()
	for _, form := range []string{
		string(secret), hex.EncodeToString(secret), strings.ToUpper(hex.EncodeToString(secret)),
		base64.StdEncoding.EncodeToString(secret), base64.RawStdEncoding.EncodeToString(secret),
		base64.RawURLEncoding.EncodeToString(secret),
		// A part of the key is as bad as all of it.
		hex.EncodeToString(secret[:4]), string(secret[:4]),
	} {
		if strings.Contains(msg, form) {
			t.Errorf("error %q shows the key (%q)", msg, form)
		}
	}
}

func write(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	k := distinct(32)
	tests := []struct {
		name    string
		content []byte
	}{
		{"raw", k},
		{"raw that looks like white space at the end", append(distinct(31), '\n')},
		{"hex", []byte(hex.EncodeToString(k))},
		{"hex with a newline", []byte(hex.EncodeToString(k) + "\n")},
		{"upper-case hex with CRLF", []byte(strings.ToUpper(hex.EncodeToString(k)) + "\r\n")},
		{"base64", []byte(base64.StdEncoding.EncodeToString(k))},
		{"base64 with spaces around", []byte(" " + base64.StdEncoding.EncodeToString(k) + "\n\n")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := write(t, dir, strings.ReplaceAll(tc.name, " ", "-"), tc.content)
			want := tc.content
			if len(want) != seal.KeySize {
				want = k
			}
			got, err := seal.Load(p)
			if err != nil || got.ID() != seal.KeyID(want) {
				t.Fatalf("Load = %v, %v; want key %s", got.ID(), err, seal.KeyID(want))
			}
			tok, _ := keyring(t, want).Seal([]byte("x"), ctx)
			if plain, err := got.Open(tok, ctx); err != nil || string(plain) != "x" {
				t.Errorf("the loaded key does not open what the key seals: %v", err)
			}
		})
	}

	// Random keys pass, raw or not: 32 random bytes are text or hold
	// fewer than 16 values with a probability below 10^-13.
	for i := range 200 {
		r := make([]byte, seal.KeySize)
		rand.Read(r)
		if _, err := seal.Load(write(t, dir, "random-"+strconv.Itoa(i), r)); err != nil {
			t.Fatalf("Load(random key) = %v; want it accepted", err)
		}
	}
	// Text forms are text by design: a repetitive hex key is accepted.
	if _, err := seal.Load(write(t, dir, "hex-of-text", []byte(strings.Repeat("5a", 32)))); err != nil {
		t.Errorf("Load(hex of 32 'Z') = %v; want it accepted (text forms are not checked)", err)
	}

	first := write(t, dir, "first", k)
	second := write(t, dir, "second", []byte(hex.EncodeToString(key(8))+"\n"))
	two, err := seal.Load(first, " "+second)
	if err != nil || two.ID() != seal.KeyID(k) {
		t.Fatalf("Load(two files) id %v, %v; want the first file's key", two.ID(), err)
	}
	tok, _ := keyring(t, key(8)).Seal([]byte("x"), ctx)
	if _, err := two.Open(tok, ctx); err != nil {
		t.Errorf("Load(two files) does not open with the second key: %v", err)
	}
}

func TestLoadRejects(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "a-directory")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		content []byte // nil: no file is written
		path    string // instead of a file written with content
		want    string
	}{
		{name: "missing", path: filepath.Join(dir, "nope"), want: "is missing"},
		{name: "directory", path: sub, want: "is unreadable"},
		{name: "empty file", content: []byte{}, want: "holds 0 bytes"},
		{name: "31 raw bytes", content: distinct(31), want: "holds 31 bytes"},
		{name: "33 raw bytes", content: distinct(33), want: "holds 33 bytes"},
		{name: "raw key and a newline", content: append(distinct(32), '\n'), want: "holds 33 bytes"},
		{name: "62 hex digits", content: []byte(hex.EncodeToString(distinct(31)) + "\n"), want: "holds 63 bytes"},
		{name: "66 hex digits", content: []byte(hex.EncodeToString(distinct(33))), want: "holds 66 bytes"},
		{name: "64 characters not hex", content: []byte(strings.Repeat("g", 64)), want: "not a key"},
		{name: "base64 of 31 bytes", content: []byte(base64.StdEncoding.EncodeToString(distinct(31))), want: "not a key"},
		{name: "base64 of 33 bytes", content: []byte(base64.StdEncoding.EncodeToString(distinct(33)) + "\n"), want: "not a key"},
		{name: "unpadded base64", content: []byte(base64.RawStdEncoding.EncodeToString(distinct(32))), want: "not a key"},
		{name: "url base64", content: []byte(base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32))), want: "not a key"},
		{name: "huge", content: bytes.Repeat(distinct(64), 100), want: "more than 4096 bytes"},
		{name: "a passphrase", content: []byte("correct horse battery staple 42!"), want: "look like a passphrase"},
		{name: "a passphrase with tabs and a newline", content: []byte("Winter2026!\tSummer2027?\tAutumn!\n"), want: "head -c 32 /dev/urandom > "},
		{name: "printable but varied", content: []byte(" !\"#$%&'()*+,-./0123456789:;<=>?"), want: "openssl rand -hex 32"},
		{name: "zeros", content: make([]byte, 32), want: "look like a passphrase or filler"},
		{name: "fifteen values", content: bytes.Repeat(distinct(15), 3)[:32], want: "not random bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.path
			if p == "" {
				p = write(t, dir, strings.ReplaceAll(tc.name, " ", "-"), tc.content)
			}
			got, err := seal.Load(p)
			if err == nil || got != nil {
				t.Fatalf("Load(%s) = %v; want an error", p, got)
			}
			if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load error %q; want it to name %s and say %q", err, p, tc.want)
			}
			if strings.Count(err.Error(), "a-directory") > 1 || strings.Count(err.Error(), "nope") > 1 {
				t.Errorf("Load error %q names the file twice", err)
			}
			assertNoKey(t, err, tc.content)
			assertNoKey(t, err, distinct(31))
			if len(tc.content) == seal.KeySize && !errors.Is(err, seal.ErrNotRandom) && len(tc.content) > 0 {
				t.Errorf("Load error %v; want ErrNotRandom for 32 bytes", err)
			}
		})
	}

	good := write(t, dir, "good", distinct(32))
	for _, paths := range [][]string{{""}, {" "}, {good, ""}, {}} {
		if _, err := seal.Load(paths...); err == nil {
			t.Errorf("Load(%q) succeeded; want an error", paths)
		}
	}
	bad := write(t, dir, "bad", distinct(20))
	if _, err := seal.Load(good, bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("Load(good, bad) = %v; want an error naming %s", err, bad)
	}
}

// Ensure no error of Open shows a key of the keyring or the plain text.
func TestOpenErrorsHideKeys(t *testing.T) {
	a := distinct(32)
	k := keyring(t, a)
	tok, _ := k.Seal([]byte("Zx9!kq2Lm"), ctx)
	for _, s := range []string{tok[:len(tok)-2], seal.Prefix + "00000000:" + tok[len(seal.Prefix)+9:], "x"} {
		_, err := k.Open(s, ctx)
		if err == nil {
			t.Fatalf("Open(%q) succeeded", s)
		}
		assertNoKey(t, err, a)
		if strings.Contains(err.Error(), "Zx9") {
			t.Errorf("Open error %q shows the plain text", err)
		}
	}
}

// FuzzOpen: Open never panics, and accepts nothing Seal did not make. The
// keys only ever seal "secret" (each fuzzing process seals its own token,
// so the seed one may come from another process): a text that opens must
// be such a token, spelled exactly as Seal spells it; anything else would
// be a forgery or another spelling of a token.
func FuzzOpen(f *testing.F) {
	a, b := key(3), key(4)
	k, err := seal.New(a, b)
	if err != nil {
		f.Fatal(err)
	}
	tok, err := k.Seal([]byte("secret"), ctx)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(tok)
	f.Add(tok + "\n")
	f.Add(seal.Prefix + seal.KeyID(b) + tok[len(seal.Prefix)+8:])
	f.Add(seal.Prefix + k.ID() + ":")
	f.Add(seal.Prefix + k.ID() + ":AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("sealed:v1::")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := k.Open(s, ctx)
		if err == nil && (string(got) != "secret" || !canonical(s, seal.KeyID(a), seal.KeyID(b))) {
			t.Errorf("Open(%q) = %q; want an error for a text Seal did not make", s, got)
		}
		if err != nil && got != nil {
			t.Errorf("Open(%q) = %q with error %v; want nil", s, got, err)
		}
		if err != nil && !errors.Is(err, seal.ErrNotSealed) && !errors.Is(err, seal.ErrUnknownKey) && !errors.Is(err, seal.ErrTampered) {
			t.Errorf("Open(%q) = %v; want one of the package's errors", s, err)
		}
	})
}

// canonical reports whether s is spelled as Seal spells its tokens under
// one of ids.
func canonical(s string, ids ...string) bool {
	for _, id := range ids {
		enc, ok := strings.CutPrefix(s, seal.Prefix+id+":")
		if !ok {
			continue
		}
		raw, err := base64.RawURLEncoding.DecodeString(enc)
		return err == nil && base64.RawURLEncoding.EncodeToString(raw) == enc
	}
	return false
}

// Ensure a token opens only under the context it was sealed with: another
// request id, another path or none at all does not open it.
func TestSealBindsContext(t *testing.T) {
	k := keyring(t, key(1))
	tok, err := k.Seal([]byte(`"Zx9!kq2Lm"`), []byte("5:req-1:user_info.password"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, "sealed:v2:") {
		t.Errorf("Seal = %q; want a sealed:v2: token", tok)
	}
	for _, other := range [][]byte{[]byte("5:req-2:user_info.password"), []byte("5:req-1:password"), nil, []byte("5:req-1:user_info.password ")} {
		if got, err := k.Open(tok, other); !errors.Is(err, seal.ErrTampered) || got != nil {
			t.Errorf("Open(token, %q) = %q, %v; want ErrTampered", other, got, err)
		}
	}
	if got, err := k.Open(tok, []byte("5:req-1:user_info.password")); err != nil || string(got) != `"Zx9!kq2Lm"` {
		t.Errorf("Open(token, its context) = %q, %v; want the plain text", got, err)
	}
}

// v1 is a token sealed, before contexts were bound, with key(7): what
// dead letters of that time hold.
const v1 = "sealed:v1:45881e34:iGC9Kz5y1Gzz4pKpSKYG6MWO_Dw8dXM0WAG7g2EOQr9APkpu4CJG"

// Ensure a version 1 token still opens, the old way: under any context,
// since it was bound to none; and only as it was made.
func TestOpenVersion1(t *testing.T) {
	k := keyring(t, key(7))
	if id, ok := seal.TokenKeyID(v1); !ok || id != k.ID() || !seal.IsToken(v1) {
		t.Fatalf("TokenKeyID(%q) = %q, %v; want %s", v1, id, ok, k.ID())
	}
	for _, c := range [][]byte{nil, ctx} {
		if got, err := k.Open(v1, c); err != nil || string(got) != `"Zx9!kq2Lm"` {
			t.Errorf("Open(v1 token, %q) = %q, %v; want the plain text", c, got, err)
		}
	}
	v2 := seal.Prefix + strings.TrimPrefix(v1, seal.PrefixV1)
	if _, err := k.Open(v2, nil); !errors.Is(err, seal.ErrTampered) {
		t.Errorf("Open(v1 token relabelled v2) = %v; want ErrTampered", err)
	}
	if _, err := k.Open(v1[:len(v1)-2]+"AA", nil); !errors.Is(err, seal.ErrTampered) {
		t.Errorf("Open(damaged v1 token) = %v; want ErrTampered", err)
	}
}
