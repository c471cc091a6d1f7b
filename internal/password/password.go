// Package password lets a publisher seal an autoCreate password for the
// service, so that it is never in clear in the request stream, where a
// request may wait up to a day behind the daily-quota gate: the publisher
// seals it with the service's public key (an anonymous sealed box,
// X25519, libsodium's crypto_box_seal, which every language has), and the
// service opens it with its private key just before the Zoom call.
//
// A sealed password is a JSON string in place of the password:
//
//	sealedbox:v1:<key id>:<standard base64, padded, of the crypto_box_seal output>
//
// where the key id is 8 lowercase hex digits, the first 4 bytes of the
// SHA-256 of the 32-byte public key, so the service knows which of its
// private keys to open it with. The service holds one or more private
// keys (PASSWORD_KEY_FILE): the first one's public key is the one to
// publish to, the others are kept while requests sealed for them may wait
// in the stream.
//
// The package knows nothing of requests: internal/messages checks a
// sealed password's shape when it decodes a request (Check), and the
// service opens it (Keyring.Open) for the one call that needs it.
package password

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/box"

	"github.com/zoomprov/consumer/internal/seal"
)

// Prefix starts every sealed password; a password that does not start
// with it is a plain one.
const Prefix = "sealedbox:v1:"

// KeySize is the length of a private or public key in bytes.
const KeySize = 32

// MinChars and MaxChars bound an autoCreate password, in characters (Zoom's
// create-user rule); a sealed one is held to them once opened.
const (
	MinChars = 8
	MaxChars = 32
)

// maxPasswordBytes is the most bytes a password of MaxChars characters
// takes in UTF-8; with box.AnonymousOverhead they bound a well-formed
// sealed box.
const maxPasswordBytes = MaxChars * utf8.UTFMax

// Errors, matched with errors.Is.
var (
	// ErrMalformed means a value that starts with Prefix is not shaped
	// as a sealed password: no 8-hex-digit key id, no strict standard
	// base64, or a box too short or too long to hold a password of
	// MinChars to MaxChars characters.
	ErrMalformed = errors.New("password: not a well-formed sealed password (want sealedbox:v1:<key id>:<base64>)")
	// ErrUnopenable means a sealed password cannot be opened: the
	// service holds no key with its id, the box does not open under
	// that key (damaged, or sealed for another key), or what it holds is
	// no valid password. The request cannot succeed as it is: it is a
	// permanent failure, an invalid request.
	ErrUnopenable = errors.New("password: the sealed password cannot be opened")
)

// IsSealed reports whether p is meant as a sealed password: it starts with
// Prefix. Check says whether it is well formed.
func IsSealed(p string) bool { return strings.HasPrefix(p, Prefix) }

// Check returns nil if p is a well-formed sealed password (see the package
// comment), else an error matching ErrMalformed. It does not open it. The
// error never holds p.
func Check(p string) error {
	_, _, err := parse(p)
	return err
}

// parse splits a sealed password into its key id and box.
func parse(p string) (id string, sealed []byte, err error) {
	rest, ok := strings.CutPrefix(p, Prefix)
	if !ok {
		return "", nil, ErrMalformed
	}
	id, enc, ok := strings.Cut(rest, ":")
	if !ok || !isID(id) {
		return "", nil, ErrMalformed
	}
	sealed, err = base64.StdEncoding.Strict().DecodeString(enc)
	// The decoder skips line breaks; a well-formed value has none.
	if err != nil || base64.StdEncoding.EncodeToString(sealed) != enc ||
		len(sealed) < box.AnonymousOverhead+MinChars || len(sealed) > box.AnonymousOverhead+maxPasswordBytes {
		return "", nil, ErrMalformed
	}
	return id, sealed, nil
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

// KeyID returns the id of a public key: 8 lowercase hex digits, the first
// 4 bytes of the SHA-256 of its 32 bytes. A publisher puts it in the
// sealed password; it reveals nothing of the private key.
func KeyID(public *[KeySize]byte) string {
	sum := sha256.Sum256(public[:])
	return hex.EncodeToString(sum[:4])
}

// Seal seals plain for the holder of the private key of public, as a
// publisher does, and returns the sealed password. It fails only if the
// system has no randomness.
func Seal(public *[KeySize]byte, plain string) (string, error) {
	out, err := box.SealAnonymous(nil, []byte(plain), public, rand.Reader)
	if err != nil {
		return "", fmt.Errorf("password: seal: %w", err)
	}
	return Prefix + KeyID(public) + ":" + base64.StdEncoding.EncodeToString(out), nil
}

// ParsePublicKey reads a public key as `consumer password public-key`
// prints it: the standard base64 of its 32 bytes (44 characters), or 64
// hex digits; white space around it is ignored. The error never holds s.
func ParsePublicKey(s string) (*[KeySize]byte, error) {
	t := strings.TrimSpace(s)
	var b []byte
	var err error
	switch len(t) {
	case base64.StdEncoding.EncodedLen(KeySize):
		b, err = base64.StdEncoding.Strict().DecodeString(t)
	case hex.EncodedLen(KeySize):
		b, err = hex.DecodeString(t)
	default:
		err = errors.New("wrong length")
	}
	if err != nil || len(b) != KeySize {
		return nil, errors.New("password: not a public key: want the base64 of 32 bytes (44 characters) or 64 hex digits, as `consumer password public-key` prints it")
	}
	return (*[KeySize]byte)(b), nil
}

// EncodePublicKey is the standard base64 of a public key, the form
// ParsePublicKey reads and PASSWORD_PUBLIC_KEY holds.
func EncodePublicKey(public *[KeySize]byte) string {
	return base64.StdEncoding.EncodeToString(public[:])
}

// keyPair is one private key of a Keyring and its public key.
type keyPair struct {
	public, private [KeySize]byte
}

// Keyring holds the service's private keys. It is immutable once made by
// New or Load, and safe for concurrent use. A nil *Keyring holds no key:
// Open fails for every sealed password and returns plain ones as they
// are.
type Keyring struct {
	ids   []string // ids[0] is the key to publish to
	pairs map[string]*keyPair
}

// New returns a keyring of the private keys, each exactly KeySize bytes
// (any 32 random bytes are an X25519 private key). The first key's public
// key is the one publishers seal for; the others still open what was
// sealed for them. An error names a wrong key by its position (from 1),
// never by its bytes.
func New(privates ...[]byte) (*Keyring, error) {
	if len(privates) == 0 {
		return nil, errors.New("password: no key given")
	}
	k := &Keyring{pairs: make(map[string]*keyPair, len(privates))}
	for i, priv := range privates {
		if len(priv) != KeySize {
			return nil, fmt.Errorf("password: key %d has %d bytes; want %d", i+1, len(priv), KeySize)
		}
		p := &keyPair{}
		copy(p.private[:], priv)
		pub, err := curve25519.X25519(p.private[:], curve25519.Basepoint)
		if err != nil {
			return nil, fmt.Errorf("password: key %d: %w", i+1, err)
		}
		copy(p.public[:], pub)
		id := KeyID(&p.public)
		if _, dup := k.pairs[id]; !dup {
			k.ids = append(k.ids, id)
			k.pairs[id] = p
		}
	}
	return k, nil
}

// Load reads one private key from each file, as seal.ReadKeyFile reads
// them (32 random bytes, raw, hex or base64; a passphrase is refused), and
// returns New of them in order. White space around each path is ignored.
// An error names the file, never what it holds.
func Load(paths ...string) (*Keyring, error) {
	if len(paths) == 0 {
		return nil, errors.New("password: no key file given")
	}
	keys := make([][]byte, 0, len(paths))
	for i, p := range paths {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, fmt.Errorf("password: key file %d of %d has an empty name", i+1, len(paths))
		}
		key, err := seal.ReadKeyFile(p)
		if err != nil {
			return nil, fmt.Errorf("password: %w", err)
		}
		keys = append(keys, key)
	}
	return New(keys...)
}

// PublicKey returns the public key publishers seal for: the first key's.
// It is nil for a nil keyring.
func (k *Keyring) PublicKey() *[KeySize]byte {
	if k == nil || len(k.ids) == 0 {
		return nil
	}
	pub := k.pairs[k.ids[0]].public
	return &pub
}

// IDs returns the ids of the keyring's keys, the one to publish to first.
func (k *Keyring) IDs() []string {
	if k == nil {
		return nil
	}
	return append([]string(nil), k.ids...)
}

// Open returns the password p as Zoom must receive it: p itself when it
// is not sealed (IsSealed), else the password sealed in it, opened with
// the keyring's key of its id. The opened password must be valid UTF-8
// of MinChars to MaxChars characters, as a plain one must.
//
// Every error matches ErrUnopenable: the value is malformed, the keyring
// holds no key of its id (for every sealed password, with a nil
// keyring), the box does not open under that key, or what it holds is no
// valid password. Such a request is a permanent failure: an invalid
// request. Errors name the key id, never a password, sealed or not.
func (k *Keyring) Open(p string) (string, error) {
	if !IsSealed(p) {
		return p, nil
	}
	id, sealed, err := parse(p)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrUnopenable, err)
	}
	var pair *keyPair
	if k != nil {
		pair = k.pairs[id]
	}
	switch {
	case k == nil:
		return "", fmt.Errorf("%w: it is sealed for key %s, and the service has no password key (PASSWORD_KEY_FILE)", ErrUnopenable, id)
	case pair == nil:
		return "", fmt.Errorf("%w: it is sealed for key %s, which is not among the service's password keys (PASSWORD_KEY_FILE holds %s)", ErrUnopenable, id, strings.Join(k.ids, ", "))
	}
	plain, ok := box.OpenAnonymous(nil, sealed, &pair.public, &pair.private)
	if !ok {
		return "", fmt.Errorf("%w: it does not open under key %s: it was damaged, or sealed for another key", ErrUnopenable, id)
	}
	if !utf8.Valid(plain) {
		return "", fmt.Errorf("%w: what it holds under key %s is not text (invalid UTF-8)", ErrUnopenable, id)
	}
	// The length is left out: it says something about the secret.
	if n := utf8.RuneCount(plain); n < MinChars || n > MaxChars {
		return "", fmt.Errorf("%w: the password sealed under key %s must be %d to %d characters", ErrUnopenable, id, MinChars, MaxChars)
	}
	return string(plain), nil
}
