package messages

import "strings"

// ActionFromSubject returns the last token of subject when subject is prefix
// followed by exactly one more token, so with prefix "zoom.users.create" the
// subject "zoom.users.create.ssoCreate" yields "ssoCreate", true. A subject
// with another prefix, no action token or extra tokens yields "", false.
//
// The token is returned as a string, not an Action, because it is not yet
// validated: the caller compares it with the request body's action and
// reports a mismatch or an unknown action itself.
func ActionFromSubject(subject, prefix string) (string, bool) {
	rest := subject
	if prefix != "" {
		var ok bool
		rest, ok = strings.CutPrefix(subject, prefix+".")
		if !ok {
			return "", false
		}
	}
	if rest == "" || strings.Contains(rest, ".") {
		return "", false
	}
	return rest, true
}
