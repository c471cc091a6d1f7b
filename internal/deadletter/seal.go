package deadletter

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/zoomprov/consumer/internal/password"
	"github.com/zoomprov/consumer/internal/seal"
)

// Errors of Header.Open, matched with errors.Is. A password that does not
// open also matches seal.ErrUnknownKey (the key is not among those given)
// or seal.ErrTampered (the token was altered or damaged).
var (
	// ErrRedacted: the consumer had no seal key when it dead-lettered the
	// request, so the password is gone.
	ErrRedacted = errors.New("the password was redacted when the request was dead-lettered (the consumer had no DLQ_SEAL_KEY_FILE): publish the request again with its password")
	// ErrNoKey: the password is sealed and no key was given.
	ErrNoKey = errors.New("no seal key given (DLQ_SEAL_KEY_FILE or --dlq-seal-key-file)")
)

// ErrSealFailed is returned by Header.Seal when it was given keys but
// could not seal a password, and redacted the passwords instead.
var ErrSealFailed = errors.New("deadletter: a password could not be sealed; the dead letter's passwords are redacted instead")

// Seal returns body with the value of every password member replaced,
// so that a dead letter, which may be kept for years, never holds one in
// plain text: sealed with keys (each value's raw bytes become a token of
// internal/seal, bound to h.RequestID and the member's path, see
// context), or, without keys or if sealing fails, replaced by
// PasswordRedacted. It records what became of them in h.Password and the
// sealing key's id in h.SealKey; both stay empty, and body is returned as
// it is, when there was no password.
//
// A password its publisher sealed for the service (internal/password,
// "sealedbox:v1:…") is kept as it is: it is in no clear, and a replay
// needs no key of the dead letter's to send it again. It is not counted:
// a body whose only passwords are such gets no password headers.
//
// A failure to seal (no key in the keyring, no randomness) is no reason to
// lose the dead letter: the passwords are redacted, as without keys, and
// the error returned, matching ErrSealFailed and wrapping the cause (which
// never holds a password), says so for the caller to log. The body
// returned is the one to store in either case.
func (h *Header) Seal(keys *seal.Keyring, body []byte) ([]byte, error) {
	h.Password, h.SealKey = "", ""
	var sealErr error
	if keys != nil {
		out, n, err := replacePasswordsKeeping(body, sealedForService, func(raw []byte, path string) (string, error) {
			return keys.Seal(raw, h.context(path))
		})
		switch {
		case err == nil && n == 0:
			return body, nil
		case err == nil:
			h.Password, h.SealKey = PasswordSealed, keys.ID()
			return out, nil
		}
		sealErr = fmt.Errorf("%w (key %q): %w", ErrSealFailed, keys.ID(), err)
	}
	out, n, err := replacePasswordsKeeping(body, sealedForService, func([]byte, string) (string, error) {
		return PasswordRedacted, nil
	})
	if err != nil || n == 0 {
		return body, sealErr
	}
	h.Password = PasswordRedacted
	return out, sealErr
}

// Open reverses Seal for a replay: it returns body, the body of the dead
// letter h describes, with the passwords it holds sealed opened with keys;
// a body without sealed passwords is returned as it is. It fails, and the
// dead letter must not be replayed, when the passwords were redacted
// (ErrRedacted), are sealed but no keys are given (ErrNoKey), or one does
// not open (seal.ErrUnknownKey, seal.ErrTampered); the error names the key
// but never shows a password, sealed or not.
func (h Header) Open(keys *seal.Keyring, body []byte) ([]byte, error) {
	if h.Password == PasswordRedacted {
		return body, ErrRedacted
	}
	var openErr error
	out, n, err := restorePasswords(body, func(v, path string) ([]byte, bool, error) {
		if !seal.IsToken(v) || openErr != nil {
			return nil, false, nil
		}
		id, _ := seal.TokenKeyID(v)
		raw, err := keys.Open(v, h.context(path))
		switch {
		case keys == nil:
			openErr = fmt.Errorf("the password is sealed with key %s: %w", id, ErrNoKey)
		case errors.Is(err, seal.ErrUnknownKey):
			openErr = fmt.Errorf("the password is sealed with key %s, which is not among the keys given (%w)", id, seal.ErrUnknownKey)
		case err != nil:
			openErr = fmt.Errorf("the password sealed with key %s does not open at %s of request %q: it was altered or damaged, or moved from another dead letter or field (%w)", id, path, h.requestID(), err)
		}
		return raw, openErr == nil, nil
	})
	if openErr != nil {
		return body, openErr
	}
	if err != nil {
		return body, err
	}
	if n == 0 && h.Password == PasswordSealed {
		return body, errors.New("the dead letter says its password is sealed, but its body holds no sealed password")
	}
	return out, nil
}

// context is what a password's token is bound to besides its key: the
// request id of the dead letter, as its Request-Id header holds it, and
// the path of the password member in the body, such as
// "user_info.password", as
//
//	<byte length of the request id>:<request id>:<path>
//
// so that a token copied into another dead letter, or to another field of
// the same one, does not open. (Two members with the same path, a
// duplicate key, may swap tokens: they are one field.)
func (h Header) context(path string) []byte {
	id := h.requestID()
	return []byte(strconv.Itoa(len(id)) + ":" + id + ":" + path)
}

// requestID is the request id as Headers writes it and Parse reads it
// back, so that sealing and opening bind the same one.
func (h Header) requestID() string { return headerValue(h.RequestID) }

// sealedForService reports whether a password value is a well-formed
// password sealed for the service by its publisher.
func sealedForService(v string) bool { return password.IsSealed(v) && password.Check(v) == nil }
