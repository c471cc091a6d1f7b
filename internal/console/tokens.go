package console

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// MinSecretLength is the shortest secret a token file may hold: 16
// characters, such as `openssl rand -hex 16` prints; `openssl rand -hex
// 32` is better.
const MinSecretLength = 16

// maxNameLength bounds a token's name, the actor of its audit events.
const maxNameLength = 64

// ErrNoTokens is matched by the error of a token file that holds no
// token.
var ErrNoTokens = errors.New("console: the token file holds no token (want lines name:secret)")

// token is one operator's login: the name recorded as the actor of the
// audit events, and the secret, which never leaves this package.
type token struct {
	name string
	// sum is the SHA-256 of the secret: secrets are compared as sums,
	// in constant time and whatever their lengths.
	sum [sha256.Size]byte
	// key signs the sessions and CSRF tokens of this login: an HMAC of a
	// fixed label under the secret, the same on every replica that reads
	// the same file, so a session survives a request served by another
	// replica.
	key []byte
}

// Tokens are the console's logins, read from the file CONSOLE_TOKEN_FILE
// names. Printing them shows the names only.
type Tokens struct {
	list []token
}

// String lists the names, never a secret.
func (t *Tokens) String() string {
	if t == nil {
		return "no console tokens"
	}
	names := make([]string, len(t.list))
	for i, tk := range t.list {
		names[i] = tk.name
	}
	return "console tokens: " + strings.Join(names, ", ")
}

// GoString is String, so that %#v shows no secret either.
func (t *Tokens) GoString() string { return t.String() }

// Names returns the names of the logins, in the file's order.
func (t *Tokens) Names() []string {
	out := make([]string, len(t.list))
	for i, tk := range t.list {
		out[i] = tk.name
	}
	return out
}

// LoadTokens reads a token file: one login per line, "name:secret", the
// name being the actor of the audit events the login's changes record.
// Blank lines and lines starting with # are skipped. Errors name the file
// and the line, never its content.
func LoadTokens(path string) (*Tokens, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("cannot read %s: %w", path, pe.Err)
		}
		return nil, err
	}
	t, err := ParseTokens(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// ParseTokens reads token lines from r (see LoadTokens). A name is 1 to
// 64 letters, digits, '.', '_', '-' or '@'; a secret is at least
// MinSecretLength characters without spaces (it may hold ':'); names and
// secrets are unique. ErrNoTokens when there are none.
func ParseTokens(r io.Reader) (*Tokens, error) {
	t := &Tokens{}
	names := map[string]bool{}
	sums := map[[sha256.Size]byte]bool{}
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, secret, ok := strings.Cut(line, ":")
		switch {
		case !ok:
			return nil, fmt.Errorf("line %d: want name:secret", n)
		case !validName(name):
			return nil, fmt.Errorf("line %d: the name must be 1 to %d letters, digits, '.', '_', '-' or '@'", n, maxNameLength)
		case len(secret) < MinSecretLength:
			return nil, fmt.Errorf("line %d (%s): the secret must be at least %d characters (openssl rand -hex 32 makes one)", n, name, MinSecretLength)
		case strings.ContainsAny(secret, " \t"):
			return nil, fmt.Errorf("line %d (%s): the secret must not hold spaces", n, name)
		case names[name]:
			return nil, fmt.Errorf("line %d: the name %s is given twice", n, name)
		}
		sum := sha256.Sum256([]byte(secret))
		if sums[sum] {
			return nil, fmt.Errorf("line %d (%s): the secret of an earlier line: each login needs its own", n, name)
		}
		names[name], sums[sum] = true, true
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte("zoomprov console session key v1"))
		t.list = append(t.list, token{name: name, sum: sum, key: mac.Sum(nil)})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", n+1, err)
	}
	if len(t.list) == 0 {
		return nil, ErrNoTokens
	}
	return t, nil
}

func validName(s string) bool {
	if s == "" || len(s) > maxNameLength {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-', r == '@':
		default:
			return false
		}
	}
	return true
}

// match returns the login whose secret is secret. Every login is
// compared, in constant time, whether or not an earlier one matched.
func (t *Tokens) match(secret string) (token, bool) {
	sum := sha256.Sum256([]byte(secret))
	found := -1
	for i := range t.list {
		if subtle.ConstantTimeCompare(sum[:], t.list[i].sum[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return token{}, false
	}
	return t.list[found], true
}

// byName returns the login named name.
func (t *Tokens) byName(name string) (token, bool) {
	for _, tk := range t.list {
		if tk.name == name {
			return tk, true
		}
	}
	return token{}, false
}
