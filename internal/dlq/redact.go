package dlq

import (
	"bytes"
	"encoding/json"

	"github.com/zoomprov/consumer/internal/deadletter"
)

// MaskedPassword replaces password values in RedactBody's output.
const MaskedPassword = "********"

// RedactBody returns a request body for people to read: the value of every
// "password" member (at any depth, in any letter case, and also inside a
// string that holds JSON, such as a user_info given as a string) replaced
// by "********", and, when the body is valid JSON, indented. ok is false
// when it is not valid JSON (a truncated body, say); the text is then the
// body as stored, with invalid UTF-8 replaced and every password value that
// can be recognised masked all the same, up to the end of the body for an
// unterminated one.
func RedactBody(body []byte) (text string, ok bool) {
	masked := maskPasswords(bytes.ToValidUTF8(body, []byte("\uFFFD")))
	if json.Valid(masked) {
		var out bytes.Buffer
		if err := json.Indent(&out, masked, "", "  "); err == nil {
			return out.String(), true
		}
	}
	return string(masked), false
}

// maskPasswords replaces every password value deadletter.ReplacePasswords
// finds.
func maskPasswords(b []byte) []byte {
	out, _, _ := deadletter.ReplacePasswords(b, func([]byte) (string, error) { return MaskedPassword, nil })
	return out
}
