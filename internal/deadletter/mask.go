package deadletter

import (
	"bytes"
	"encoding/json"
)

// Masked replaces password values in MaskBody's output.
const Masked = "********"

// MaskBody returns a dead letter's body for people to read (`consumer dlq
// show`): the value of every password member (see password.go: at any
// depth, in any letter case, and also inside a string that holds JSON,
// such as a user_info given as a string), sealed or not, replaced by
// Masked, and, when the body is valid JSON, indented. ok is false when it
// is not valid JSON (a truncated body, say); the text is then the body as
// stored, with invalid UTF-8 replaced and every password value that can be
// recognised masked all the same, up to the end of the body for an
// unterminated one.
func MaskBody(body []byte) (text string, ok bool) {
	masked, _, _ := replacePasswords(bytes.ToValidUTF8(body, []byte("\uFFFD")), func([]byte, string) (string, error) { return Masked, nil })
	if json.Valid(masked) {
		var out bytes.Buffer
		if err := json.Indent(&out, masked, "", "  "); err == nil {
			return out.String(), true
		}
	}
	return string(masked), false
}
