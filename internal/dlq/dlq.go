// Package dlq reads, filters, replays and purges the dead letters of the
// Zoom provisioning consumer, for operators (`consumer dlq`) and their
// scripts. It works against any NATS server with the service's streams; it
// needs no nats CLI.
//
// A replay republishes a dead letter's original body on the request
// subject of its action with a new Nats-Msg-Id, "<request id>/replay/<dead
// letter sequence>", waits for the request stream's acknowledgement, and
// only then deletes the dead letter. A run that stops between the two
// (crash, Ctrl-C, lost connection) leaves the dead letter in place; running
// the replay again republishes it with the same Nats-Msg-Id, which the
// request stream reports as a duplicate within its de-duplication window
// (24 h by default), so the request is neither lost nor doubled.
//
// The package prints nothing and reads no configuration: the caller passes
// a jetstream.JetStream and the service's topology.Topology.
package dlq

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/deadletter"
	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/seal"
	"github.com/zoomprov/consumer/internal/topology"
)

// ErrNotFound is returned by Get when the dead-letter stream holds no
// message with the sequence asked for.
var ErrNotFound = errors.New("dlq: no such dead letter")

// Entry is one dead letter as stored in the dead-letter stream.
type Entry struct {
	// Seq is the dead letter's sequence in the dead-letter stream; it
	// identifies the entry for show, replay and purge.
	Seq uint64
	// Subject is the dead letter's subject, <dead-letter prefix>.<action>.
	Subject string
	// Action is the subject's last part: the action of the subject the
	// request arrived on ("unknown" for a request that named none, and
	// the misspelt token for one published on an unknown action's subject).
	Action string
	// DeadLetter holds the dead-letter headers. When they are malformed
	// (HeaderErr is set), it holds what could be read.
	DeadLetter deadletter.Header
	// HeaderErr is set when the headers are not those of a dead letter
	// written by the service, e.g. a message someone published on the
	// dead-letter subject by hand. Such an entry is never replayed.
	HeaderErr error
	// Time is when the request was dead-lettered: the Dead-Lettered-At
	// header, or the time the message was stored when that is missing.
	Time time.Time
	// Stored is when the dead-letter stream stored the message.
	Stored time.Time
	// Email is the request's user_info.email, as far as the body could be
	// decoded ("" if not at all).
	Email string
	// Body is the original request body, byte for byte.
	Body []byte
	// Headers are all the message's headers, the dead-letter ones and
	// those the publisher of the request set.
	Headers nats.Header
}

// RequestID is the ID of the request that was dead-lettered: the Request-Id
// header, else the Nats-Msg-Id of the dead letter without its "dlq-"
// prefix, else "<dead-letter stream>-<sequence>".
func (e Entry) RequestID(topo topology.Topology) string {
	if e.DeadLetter.RequestID != "" {
		return e.DeadLetter.RequestID
	}
	if id, ok := strings.CutPrefix(e.Headers.Get(jetstream.MsgIDHeader), deadletter.MsgID("")); ok && id != "" {
		return id
	}
	return topo.DeadLetterStream + "-" + strconv.FormatUint(e.Seq, 10)
}

// Replayable reports why e cannot be replayed, or nil if it can: its
// headers must be a dead letter's, its password not redacted, and its body
// must pass messages.Decode and name the same action as its subject (or,
// for a lifecycle operation, pass messages.CheckOperation), the rules the
// consumer applies. An entry that fails would only be dead-lettered again.
func (e Entry) Replayable() error {
	if e.HeaderErr != nil {
		return fmt.Errorf("not a dead letter written by the service: %w", e.HeaderErr)
	}
	if e.DeadLetter.Password == deadletter.PasswordRedacted {
		return ErrRedacted
	}
	if op := messages.Operation(e.Action); op.Valid() {
		return messages.CheckOperation(op, e.Body)
	}
	req, err := messages.Decode(e.Body)
	if err != nil {
		return err
	}
	if !messages.Action(e.Action).Valid() {
		return fmt.Errorf("%w: subject %q names no action", messages.ErrInvalid, e.Subject)
	}
	if string(req.Action) != e.Action {
		return fmt.Errorf("%w: action %q in the body does not match the subject's action %q", messages.ErrInvalid, req.Action, e.Action)
	}
	return nil
}

// Errors of Entry.Open (see deadletter.Header.Open).
var (
	// ErrRedacted: the consumer had no seal key when it dead-lettered the
	// request, so the password is gone.
	ErrRedacted = deadletter.ErrRedacted
	// ErrNoKey: the password is sealed and no key was given.
	ErrNoKey = deadletter.ErrNoKey
)

// Open returns e with the passwords the consumer sealed opened with keys,
// ready to be replayed; a dead letter without sealed passwords is returned
// as it is. It fails, and the entry must not be replayed, when a password
// was redacted or does not open (deadletter.Header.Open).
func (e Entry) Open(keys *seal.Keyring) (Entry, error) {
	body, err := e.DeadLetter.Open(keys, e.Body)
	if err != nil {
		return e, err
	}
	e.Body = body
	return e, nil
}

// newEntry reads a stored dead letter.
func newEntry(topo topology.Topology, m *jetstream.RawStreamMsg) Entry {
	e := Entry{
		Seq:     m.Sequence,
		Subject: m.Subject,
		Body:    m.Data,
		Headers: m.Header,
		Stored:  m.Time.UTC(),
	}
	if e.Headers == nil {
		e.Headers = nats.Header{}
	}
	e.Action, _ = strings.CutPrefix(m.Subject, topo.DeadLetterPrefix+".")
	e.DeadLetter, e.HeaderErr = deadletter.Parse(e.Headers)
	if e.HeaderErr != nil {
		// Keep what is readable, for listing and filtering.
		e.DeadLetter = deadletter.Header{
			Reason:      messages.Reason(firstHeader(e.Headers, deadletter.HeaderReason)),
			ZoomMessage: firstHeader(e.Headers, deadletter.HeaderErrorMessage),
			RequestID:   firstHeader(e.Headers, deadletter.HeaderRequestID),
		}
	}
	e.Time = e.DeadLetter.DeadLetteredAt
	if e.Time.IsZero() {
		e.Time = e.Stored
	}
	// On error Decode still returns what it could read, enough to tell
	// whose request an invalid one was.
	req, _ := messages.Decode(m.Data)
	e.Email = req.UserInfo.Email
	if messages.Operation(e.Action).Valid() {
		e.Email = messages.BestEffortEmail(m.Data)
	}
	return e
}

func firstHeader(h nats.Header, name string) string {
	if v := h.Get(name); v != "" {
		return v
	}
	for k, vs := range h {
		if strings.EqualFold(k, name) && len(vs) > 0 {
			return vs[0]
		}
	}
	return ""
}

// SeqRange is an inclusive range of stream sequences.
type SeqRange struct {
	From, To uint64
}

// ParseSeqRanges parses a comma-separated list of sequences and inclusive
// ranges, such as "10-20,25" or "100-" (100 and every later one).
func ParseSeqRanges(s string) ([]SeqRange, error) {
	var out []SeqRange
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		from, to, isRange := strings.Cut(part, "-")
		r := SeqRange{}
		var err error
		if r.From, err = parseSeq(from); err != nil {
			return nil, fmt.Errorf("dlq: sequence %q: want a number or a range such as 10-20", part)
		}
		switch {
		case !isRange:
			r.To = r.From
		case strings.TrimSpace(to) == "":
			r.To = math.MaxUint64
		default:
			if r.To, err = parseSeq(to); err != nil {
				return nil, fmt.Errorf("dlq: sequence %q: want a number or a range such as 10-20", part)
			}
			if r.To < r.From {
				return nil, fmt.Errorf("dlq: sequence range %q ends before it starts", part)
			}
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("dlq: sequences %q: want numbers or ranges such as 10-20,25", s)
	}
	return out, nil
}

func parseSeq(s string) (uint64, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil || n == 0 {
		return 0, errors.New("not a sequence")
	}
	return n, nil
}

// Filter selects dead letters. Within one field the values are
// alternatives (any may match); the fields must all match. A zero field
// matches everything, so the zero Filter matches every dead letter.
type Filter struct {
	// Reasons are dead-letter reasons (Zoom-Provisioning-Reason).
	Reasons []messages.Reason
	// Statuses are Zoom HTTP statuses; 0 selects dead letters for which
	// Zoom was never called.
	Statuses []int
	// Codes are Zoom error codes.
	Codes []int
	// Actions are actions as in Entry.Action.
	Actions []string
	// Since and Until bound Entry.Time: Since <= Time < Until. A zero time
	// is no bound.
	Since, Until time.Time
	// Email is an address, matched exactly but case-insensitively, or a
	// domain, "@example.com" or "example.com", matched against the part
	// after the "@".
	Email string
	// Seqs are sequence ranges.
	Seqs []SeqRange
}

// IsZero reports whether f selects everything.
func (f Filter) IsZero() bool {
	return len(f.Reasons) == 0 && len(f.Statuses) == 0 && len(f.Codes) == 0 && len(f.Actions) == 0 &&
		f.Since.IsZero() && f.Until.IsZero() && f.Email == "" && len(f.Seqs) == 0
}

// Match reports whether f selects e.
func (f Filter) Match(e Entry) bool {
	switch {
	case len(f.Reasons) > 0 && !slices.Contains(f.Reasons, e.DeadLetter.Reason),
		len(f.Statuses) > 0 && !slices.Contains(f.Statuses, e.DeadLetter.HTTPStatus),
		len(f.Codes) > 0 && !slices.Contains(f.Codes, e.DeadLetter.ZoomCode),
		len(f.Actions) > 0 && !slices.Contains(f.Actions, e.Action),
		!f.Since.IsZero() && e.Time.Before(f.Since),
		!f.Until.IsZero() && !e.Time.Before(f.Until),
		f.Email != "" && !matchEmail(f.Email, e.Email),
		len(f.Seqs) > 0 && !f.matchSeq(e.Seq):
		return false
	}
	return true
}

func (f Filter) matchSeq(seq uint64) bool {
	if len(f.Seqs) == 0 {
		return true
	}
	for _, r := range f.Seqs {
		if seq >= r.From && seq <= r.To {
			return true
		}
	}
	return false
}

// seqBounds narrows [first, last] to the sequences f can select.
func (f Filter) seqBounds(first, last uint64) (uint64, uint64) {
	if len(f.Seqs) == 0 {
		return first, last
	}
	lo, hi := uint64(math.MaxUint64), uint64(0)
	for _, r := range f.Seqs {
		lo, hi = min(lo, r.From), max(hi, r.To)
	}
	return max(first, lo), min(last, hi)
}

// matchEmail matches an address exactly or, for "@domain" and "domain", by
// its domain; both case-insensitively.
func matchEmail(want, email string) bool {
	if email == "" {
		return false
	}
	if at := strings.LastIndexByte(want, '@'); at > 0 {
		return strings.EqualFold(want, email)
	}
	domain := strings.TrimPrefix(want, "@")
	at := strings.LastIndexByte(email, '@')
	return at >= 0 && strings.EqualFold(email[at+1:], domain)
}

// stream returns the dead-letter stream, with an error that names it.
func stream(ctx context.Context, js jetstream.JetStream, topo topology.Topology) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, topo.DeadLetterStream)
	if err != nil {
		return nil, fmt.Errorf("dlq: stream %s: %w", topo.DeadLetterStream, err)
	}
	return s, nil
}

// List returns the dead letters f selects, in sequence order. It reads the
// dead-letter stream message by message (only the sequences f can select),
// so it needs no consumer and changes nothing. If the stream does not
// exist the error matches jetstream.ErrStreamNotFound.
func List(ctx context.Context, js jetstream.JetStream, topo topology.Topology, f Filter) ([]Entry, error) {
	s, err := stream(ctx, js, topo)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx, jetstream.WithDeletedDetails(true))
	if err != nil {
		return nil, fmt.Errorf("dlq: stream %s: %w", topo.DeadLetterStream, err)
	}
	st := info.State
	if st.Msgs == 0 {
		return nil, nil
	}
	deleted := make(map[uint64]bool, len(st.Deleted))
	for _, seq := range st.Deleted {
		deleted[seq] = true
	}
	var out []Entry
	lo, hi := f.seqBounds(st.FirstSeq, st.LastSeq)
	for seq := lo; seq <= hi && seq >= lo; seq++ { // seq >= lo stops a wrap at MaxUint64
		if deleted[seq] || !f.matchSeq(seq) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // deleted since Info
		}
		if err != nil {
			return nil, fmt.Errorf("dlq: read %s/%d: %w", topo.DeadLetterStream, seq, err)
		}
		if e := newEntry(topo, m); f.Match(e) {
			out = append(out, e)
		}
	}
	return out, nil
}

// Count returns how many dead letters the stream holds.
func Count(ctx context.Context, js jetstream.JetStream, topo topology.Topology) (uint64, error) {
	s, err := stream(ctx, js, topo)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("dlq: stream %s: %w", topo.DeadLetterStream, err)
	}
	return info.State.Msgs, nil
}

// Get returns the dead letter with sequence seq; ErrNotFound if there is
// none.
func Get(ctx context.Context, js jetstream.JetStream, topo topology.Topology, seq uint64) (Entry, error) {
	s, err := stream(ctx, js, topo)
	if err != nil {
		return Entry{}, err
	}
	m, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Entry{}, fmt.Errorf("%w: %s holds no message with sequence %d", ErrNotFound, topo.DeadLetterStream, seq)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("dlq: read %s/%d: %w", topo.DeadLetterStream, seq, err)
	}
	return newEntry(topo, m), nil
}
