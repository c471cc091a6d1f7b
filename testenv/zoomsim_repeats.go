package testenv

import (
	"bytes"
	"net/http"
)

// Repeats counts the calls Zoom performed again for one user, the same
// call right after the same call: Retried when the earlier one's answer
// never reached the client (performed, then lost: what retrying is for),
// Duplicated when it did (a request applied twice). It reads the
// simulator's own record of performed calls (History), not the result
// stream, which keeps one result per request id whatever happened. A
// creation is performed at most once (Zoom answers 409 after it): see
// Creations for that.
type Repeats struct{ Retried, Duplicated int }

// Repeats returns the repeated calls for the user with email.
func (s *Simulator) Repeats(email string) Repeats {
	var out Repeats
	calls := s.History(email)
	for i := 1; i < len(calls); i++ {
		prev, cur := calls[i-1], calls[i]
		if prev.Method != cur.Method || prev.Path != cur.Path || prev.Query != cur.Query || !bytes.Equal(prev.Body, cur.Body) ||
			prev.Method == http.MethodPost {
			continue
		}
		if prev.AnswerLost {
			out.Retried++
		} else {
			out.Duplicated++
		}
	}
	return out
}
