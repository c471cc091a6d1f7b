// Package deadletter is the dead-letter format of the Zoom provisioning
// consumer, written by the service and read by the operators' tools: the
// headers a dead letter carries (Header, Parse), its message id (MsgID),
// and what becomes of the passwords in its body: sealed or redacted when
// the service dead-letters a request (Header.Seal), opened again for a
// replay (Header.Open), and masked for people to read (MaskBody).
//
// A dead letter's body is the request as it was published, byte for byte,
// but for the value of every password member, found at any depth and in
// any spelling (see the scanner in password.go). The cipher is
// internal/seal; this package decides what is sealed, bound to what, and
// where the tokens go.
package deadletter

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/zoomprov/consumer/internal/messages"
)

// Headers of a dead letter. The consumer sets the first nine through
// Header.Headers, and the last two when the body held a password. (The
// replay tool marks the request it republishes with
// messages.HeaderReplayedFrom and messages.HeaderOriginalRequestID.)
const (
	// HeaderReason holds the Reason the request failed.
	HeaderReason = "Zoom-Provisioning-Reason"
	// HeaderHTTPStatus holds Zoom's HTTP status, 0 if Zoom was not called.
	HeaderHTTPStatus = "Zoom-Http-Status"
	// HeaderErrorCode holds the "code" of Zoom's error body, 0 if none.
	HeaderErrorCode = "Zoom-Error-Code"
	// HeaderErrorMessage holds Zoom's error message or the validation
	// error, sanitised for a header.
	HeaderErrorMessage = "Zoom-Error-Message"
	// HeaderOriginalSubject holds the subject the request arrived on.
	HeaderOriginalSubject = "Original-Subject"
	// HeaderOriginalSequence holds the request's stream sequence.
	HeaderOriginalSequence = "Original-Sequence"
	// HeaderRequestID holds the request ID.
	HeaderRequestID = "Request-Id"
	// HeaderDeliveries holds how many times the request was delivered.
	HeaderDeliveries = "Deliveries"
	// HeaderDeadLetteredAt holds when the request was dead-lettered.
	HeaderDeadLetteredAt = "Dead-Lettered-At"
	// HeaderPassword says what became of the password in a dead letter's
	// body: PasswordSealed or PasswordRedacted. It is absent when the body
	// held none.
	HeaderPassword = "Zoom-Password"
	// HeaderSealKey names the key that sealed the password.
	HeaderSealKey = "Zoom-Seal-Key"
)

// Values of HeaderPassword.
const (
	// PasswordSealed: the passwords were sealed with the key
	// HeaderSealKey names.
	PasswordSealed = "sealed"
	// PasswordRedacted: the passwords were replaced by this very word,
	// because there was no key to seal them with (or sealing failed).
	PasswordRedacted = "redacted"
)

// maxHeaderMessageBytes bounds HeaderErrorMessage. Zoom's messages are short;
// the bound keeps an unexpected HTML error page out of the headers.
const maxHeaderMessageBytes = 512

// Header is the metadata attached, as headers, to a request copied to the
// dead-letter stream. The body of the dead letter is the original request,
// unchanged but for its passwords, so that it can be replayed.
type Header struct {
	Reason messages.Reason
	// HTTPStatus and ZoomCode are zero when Zoom was never called, for
	// example for ReasonInvalidRequest.
	HTTPStatus int
	ZoomCode   int
	// ZoomMessage is Zoom's error message or, for ReasonInvalidRequest,
	// the validation error (which never holds the password).
	ZoomMessage      string
	OriginalSubject  string
	OriginalSequence uint64
	RequestID        string
	Deliveries       int
	DeadLetteredAt   time.Time
	// Password is PasswordSealed or PasswordRedacted when the body held a
	// password, and SealKey the id of the key that sealed it.
	Password, SealKey string
}

// Headers returns the nine dead-letter headers, all of them even when a
// value is zero, so that tooling can rely on their presence. Numbers are in
// decimal and DeadLetteredAt is RFC 3339 in UTC with whole seconds.
// ZoomMessage is made safe for a header: control characters (CR and LF would
// break the NATS header block) become spaces, invalid UTF-8 is replaced and
// the result is cut to 512 bytes on a character boundary. The other strings
// get the same treatment except for the cut. HeaderPassword and
// HeaderSealKey are added only when set.
func (d Header) Headers() map[string]string {
	h := map[string]string{
		HeaderReason:           headerValue(string(d.Reason)),
		HeaderHTTPStatus:       strconv.Itoa(d.HTTPStatus),
		HeaderErrorCode:        strconv.Itoa(d.ZoomCode),
		HeaderErrorMessage:     truncate(headerValue(d.ZoomMessage), maxHeaderMessageBytes),
		HeaderOriginalSubject:  headerValue(d.OriginalSubject),
		HeaderOriginalSequence: strconv.FormatUint(d.OriginalSequence, 10),
		HeaderRequestID:        headerValue(d.RequestID),
		HeaderDeliveries:       strconv.Itoa(d.Deliveries),
		HeaderDeadLetteredAt:   d.DeadLetteredAt.UTC().Format(time.RFC3339),
	}
	if d.Password != "" {
		h[HeaderPassword] = headerValue(d.Password)
	}
	if d.SealKey != "" {
		h[HeaderSealKey] = headerValue(d.SealKey)
	}
	return h
}

// headerValue replaces what a header value cannot carry and trims the
// surrounding spaces.
func headerValue(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

// truncate cuts s to at most n bytes without splitting a character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Parse reads the headers written by Header.Headers, such as
// a nats.Header. Only HeaderReason is required; a missing optional header
// leaves its field zero. Header names are matched exactly first and then
// case-insensitively, because some clients canonicalise them. A malformed
// number or time is an error rather than a silent zero, because the replay
// tool acts on these values.
func Parse(h map[string][]string) (Header, error) {
	var d Header
	reason, ok := header(h, HeaderReason)
	if !ok || reason == "" {
		return Header{}, errors.New("deadletter: missing " + HeaderReason + " header")
	}
	d.Reason = messages.Reason(reason)
	d.ZoomMessage, _ = header(h, HeaderErrorMessage)
	d.OriginalSubject, _ = header(h, HeaderOriginalSubject)
	d.RequestID, _ = header(h, HeaderRequestID)
	d.Password, _ = header(h, HeaderPassword)
	d.SealKey, _ = header(h, HeaderSealKey)

	var err error
	d.HTTPStatus, err = intHeader(h, HeaderHTTPStatus)
	if err != nil {
		return Header{}, err
	}
	d.ZoomCode, err = intHeader(h, HeaderErrorCode)
	if err != nil {
		return Header{}, err
	}
	d.Deliveries, err = intHeader(h, HeaderDeliveries)
	if err != nil {
		return Header{}, err
	}
	if v, ok := header(h, HeaderOriginalSequence); ok && v != "" {
		d.OriginalSequence, err = strconv.ParseUint(v, 10, 64)
		if err != nil {
			return Header{}, fmt.Errorf("deadletter: header %s: %w", HeaderOriginalSequence, err)
		}
	}
	if v, ok := header(h, HeaderDeadLetteredAt); ok && v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return Header{}, fmt.Errorf("deadletter: header %s: %w", HeaderDeadLetteredAt, err)
		}
		d.DeadLetteredAt = t.UTC()
	}
	return d, nil
}

// intHeader parses the decimal header name; a missing header is zero.
func intHeader(h map[string][]string, name string) (int, error) {
	v, ok := header(h, name)
	if !ok || v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("deadletter: header %s: %w", name, err)
	}
	return n, nil
}

// header returns the first value of header name in h.
func header(h map[string][]string, name string) (string, bool) {
	v, ok := h[name]
	if !ok {
		for k, vs := range h {
			if strings.EqualFold(k, name) {
				v, ok = vs, true
				break
			}
		}
	}
	if !ok || len(v) == 0 {
		return "", false
	}
	return v[0], true
}

// MsgID returns the Nats-Msg-Id of the dead letter for a request, so
// that dead-lettering the same request twice is deduplicated by the
// dead-letter stream.
func MsgID(requestID string) string {
	return "dlq-" + requestID
}
