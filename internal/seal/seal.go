// Package seal is the cipher of the passwords that dead letters must keep
// for their replay (internal/deadletter decides what is sealed): a dead
// letter may be stored for years, and anyone who can read the stream (or
// its backups, mirrors and sources) could otherwise read them. A token is
// AES-256-GCM under an operator's key:
//
//	sealed:v2:<key id>:<base64url of nonce and ciphertext>
//
// bound, as additional data, to its version and key id and to the
// context the caller gives (the dead letter's request id and the
// password's place in it), so that a token opens only where it was made.
// Tokens made before the context was bound, "sealed:v1:…", were bound to
// their version and key id only; Open still opens them, the old way.
//
// A Keyring seals with its first key and opens with any, so keys can be
// rotated: add the new key first, keep the old one while dead letters
// name it.
package seal

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// Token prefixes: a sealed value can be told from a plain one, and a
// version from another.
const (
	// Prefix starts the tokens Seal makes: the ciphertext is bound to the
	// caller's context.
	Prefix = "sealed:v2:"
	// PrefixV1 starts the tokens of the first version, bound to their
	// key id only, which Open still opens.
	PrefixV1 = "sealed:v1:"
)

// KeySize is the length of a key in bytes: AES-256 takes 32.
const KeySize = 32

// idDomain separates key ids from any other hash of the key.
const idDomain = "zoomprov seal key id v1"

// maxKeyFile bounds what Load reads, so that a wrong path such as
// /dev/urandom fails instead of reading forever.
const maxKeyFile = 4096

// Errors of Open, matched with errors.Is, so that a replay can tell a
// value that needs no key from one whose key is missing or one that was
// damaged.
var (
	// ErrNotSealed means the value is not a token: it lacks Prefix or a
	// well-formed key id.
	ErrNotSealed = errors.New("seal: not a sealed value")
	// ErrUnknownKey means the token names a key the keyring does not
	// hold; the error Open returns names the key's id.
	ErrUnknownKey = errors.New("seal: unknown key")
	// ErrTampered means the token does not authenticate under its key: it
	// was modified, truncated or its base64 is damaged.
	ErrTampered = errors.New("seal: the sealed value was altered or is damaged")
	// ErrNotRandom means Load refused a key file of 32 raw bytes that are
	// not random: text, such as a passphrase, or too few distinct bytes.
	ErrNotRandom = errors.New("not random bytes")
)

// unknownKeyError names the key a token was sealed with; it matches
// ErrUnknownKey.
type unknownKeyError struct{ id string }

func (e *unknownKeyError) Error() string {
	return "seal: sealed with key " + e.id + ", which is not among the keys given"
}

func (e *unknownKeyError) Unwrap() error { return ErrUnknownKey }

// Keyring holds the keys that seal and open tokens. It is immutable once
// made by New or Load, and safe for concurrent use. A nil *Keyring holds no
// key: Seal fails and Open reports ErrUnknownKey for every token.
type Keyring struct {
	ids   []string // ids[0] seals
	aeads map[string]cipher.AEAD
}

// New returns a keyring that seals with keys[0] and opens with any of
// keys, so that a key can be rotated without losing what the old one
// sealed. Each key must be exactly KeySize bytes; the error names a wrong
// key by its position (from 1) and length, never by its bytes.
func New(keys ...[]byte) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("seal: no key given")
	}
	k := &Keyring{aeads: make(map[string]cipher.AEAD, len(keys))}
	for i, key := range keys {
		if len(key) != KeySize {
			return nil, fmt.Errorf("seal: key %d has %d bytes; want %d", i+1, len(key), KeySize)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("seal: key %d: %w", i+1, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("seal: key %d: %w", i+1, err)
		}
		id := KeyID(key)
		if _, dup := k.aeads[id]; !dup {
			k.ids = append(k.ids, id)
			k.aeads[id] = aead
		}
	}
	return k, nil
}

// Load reads one key from each file (see ReadKeyFile) and returns New of
// them in order, so that operators keep keys in files (Kubernetes
// Secrets) rather than in the environment. White space around each path
// is ignored.
func Load(paths ...string) (*Keyring, error) {
	if len(paths) == 0 {
		return nil, errors.New("seal: no key file given")
	}
	keys := make([][]byte, 0, len(paths))
	for i, p := range paths {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, fmt.Errorf("seal: key file %d of %d has an empty name", i+1, len(paths))
		}
		key, err := ReadKeyFile(p)
		if err != nil {
			return nil, fmt.Errorf("seal: %w", err)
		}
		keys = append(keys, key)
	}
	return New(keys...)
}

// ReadKeyFile reads a key of KeySize bytes from the file at path: the 32
// raw bytes (as `head -c 32 /dev/urandom > key` makes them), 64 hex digits
// or the standard base64 of 32 bytes; white space around the text forms is
// ignored. An error names the file and what is wrong with it (missing,
// unreadable, wrong length, not random), never what it holds, and says how
// to make a key.
//
// 32 raw bytes that are all printable ASCII or white space, or that hold
// fewer than 16 distinct byte values, are refused (ErrNotRandom): that is
// a passphrase typed into a file, or a file of zeros, not a key. 32 random
// bytes are all printable with a probability of (100/256)^32, below
// 10^-13, and hold fewer than 16 distinct values with a far smaller one.
// Hex and base64 files are text by design and are not checked.
func ReadKeyFile(path string) ([]byte, error) {
	b, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	key, ok := parseKey(b)
	if !ok {
		return nil, fmt.Errorf("key file %s holds %s, not a key: want 32 raw bytes, 64 hex digits or base64 of 32 bytes (make one with: head -c 32 /dev/urandom > %s)", path, size(len(b)), path)
	}
	if len(b) == KeySize && !looksRandom(b) {
		return nil, fmt.Errorf("key file %s holds 32 bytes that look like a passphrase or filler, %w: make a key with: head -c 32 /dev/urandom > %s (or: openssl rand -hex 32 > %s)", path, ErrNotRandom, path, path)
	}
	return key, nil
}

func readKeyFile(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err == nil {
		defer f.Close()
		var b []byte
		if b, err = io.ReadAll(io.LimitReader(f, maxKeyFile+1)); err == nil {
			return b, nil
		}
	}
	// The path is named once, by us; the cause is the system's.
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("key file %s is missing: %w", p, err)
	}
	return nil, fmt.Errorf("key file %s is unreadable: %w", p, err)
}

func size(n int) string {
	if n > maxKeyFile {
		return fmt.Sprintf("more than %d bytes", maxKeyFile)
	}
	return fmt.Sprintf("%d bytes", n)
}

// minDistinct is the fewest distinct byte values a raw key file may hold.
const minDistinct = 16

// looksRandom reports whether 32 raw bytes can be a random key: not all
// printable ASCII or white space, and at least minDistinct distinct
// values.
func looksRandom(b []byte) bool {
	text := true
	var seen [256]bool
	distinct := 0
	for _, c := range b {
		if !(c >= 0x20 && c <= 0x7e || c >= '\t' && c <= '\r') {
			text = false
		}
		if !seen[c] {
			seen[c] = true
			distinct++
		}
	}
	return !text && distinct >= minDistinct
}

func parseKey(b []byte) ([]byte, bool) {
	if len(b) == KeySize {
		return b, true
	}
	t := string(bytes.TrimSpace(b))
	switch len(t) {
	case hex.EncodedLen(KeySize):
		if key, err := hex.DecodeString(t); err == nil {
			return key, true
		}
	case base64.StdEncoding.EncodedLen(KeySize):
		if key, err := base64.StdEncoding.Strict().DecodeString(t); err == nil && len(key) == KeySize {
			return key, true
		}
	}
	return nil, false
}

// KeyID returns a key's short public name, 8 lowercase hex digits: the
// first 4 bytes of SHA-256 over a fixed domain string and the key. Tokens,
// headers and log lines carry it to say which key to use; it reveals
// nothing of the key.
func KeyID(key []byte) string {
	h := sha256.New()
	h.Write([]byte(idDomain))
	h.Write(key)
	return hex.EncodeToString(h.Sum(nil)[:4])
}

// ID returns the id of the key that seals (the first), for the headers of
// what it sealed; "" for a nil keyring.
func (k *Keyring) ID() string {
	if k == nil || len(k.ids) == 0 {
		return ""
	}
	return k.ids[0]
}

// additionalData is what a token's ciphertext is bound to: its prefix
// (version) and key id, so that a token moved to another id fails, and,
// from version 2, the caller's context after them.
func additionalData(prefix, id string, context []byte) []byte {
	ad := make([]byte, 0, len(prefix)+len(id)+1+len(context))
	ad = append(ad, prefix...)
	ad = append(ad, id...)
	ad = append(ad, ':')
	if prefix != PrefixV1 {
		ad = append(ad, context...)
	}
	return ad
}

// Seal encrypts plain with the first key under a fresh random 12-byte
// nonce, so that two seals of one value differ, and returns the token
// Prefix + id + ":" + base64url(nonce || ciphertext). The ciphertext is
// bound to context (which the token does not hold): Open opens the token
// only with the same context, so that it cannot be moved to where another
// context applies. It fails for a nil keyring or if the system has no
// randomness.
func (k *Keyring) Seal(plain, context []byte) (string, error) {
	id := k.ID()
	if id == "" {
		return "", errors.New("seal: no key to seal with")
	}
	aead := k.aeads[id]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal: read a nonce: %w", err)
	}
	out := aead.Seal(nonce, nonce, plain, additionalData(Prefix, id, context))
	return Prefix + id + ":" + base64.RawURLEncoding.EncodeToString(out), nil
}

// IsToken reports whether s starts as a token of either version does. It
// does not check the rest (Open does).
func IsToken(s string) bool {
	return strings.HasPrefix(s, Prefix) || strings.HasPrefix(s, PrefixV1)
}

// cutPrefix returns the prefix token starts with and the rest.
func cutPrefix(token string) (prefix, rest string, ok bool) {
	for _, p := range []string{Prefix, PrefixV1} {
		if rest, ok := strings.CutPrefix(token, p); ok {
			return p, rest, true
		}
	}
	return "", "", false
}

// TokenKeyID returns the id of the key a token names, for log lines and
// headers; ok is false when token is not shaped as one (no Prefix or
// PrefixV1, or no 8-hex-digit id followed by ":"). It does not check that
// the token opens.
func TokenKeyID(token string) (id string, ok bool) {
	_, rest, ok := cutPrefix(token)
	if !ok {
		return "", false
	}
	id, _, ok = strings.Cut(rest, ":")
	if !ok || !isID(id) {
		return "", false
	}
	return id, true
}

func isID(s string) bool {
	if len(s) != 8 {
		return false
	}
	for i := range len(s) {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Open decrypts a token made by Seal with whichever of the keyring's keys
// it names, under the context it was sealed with; a version 1 token
// (PrefixV1) was sealed without one, and opens whatever context is given.
// It returns ErrNotSealed when token is not shaped as a token, an error
// wrapping ErrUnknownKey and naming the id when the keyring does not hold
// that key (for every token, with a nil keyring), and ErrTampered when the
// rest does not decode or authenticate, under its key and context. Only
// the exact text Seal returned opens: no other spelling of the same bytes
// does.
func (k *Keyring) Open(token string, context []byte) ([]byte, error) {
	prefix, _, _ := cutPrefix(token)
	id, ok := TokenKeyID(token)
	if !ok {
		return nil, ErrNotSealed
	}
	var aead cipher.AEAD
	if k != nil {
		aead = k.aeads[id]
	}
	if aead == nil {
		return nil, &unknownKeyError{id: id}
	}
	enc := token[len(prefix)+len(id)+1:]
	raw, err := base64.RawURLEncoding.Strict().DecodeString(enc)
	// The decoder skips line breaks; a canonical token has none.
	if err != nil || base64.RawURLEncoding.EncodeToString(raw) != enc || len(raw) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("%w (key %s)", ErrTampered, id)
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], additionalData(prefix, id, context))
	if err != nil {
		return nil, fmt.Errorf("%w (key %s)", ErrTampered, id)
	}
	return plain, nil
}
