package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/audit"
	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/topology"
)

// ForgetReport is what Forget did.
type ForgetReport struct {
	// Key is the erased entry's key (Key of the address).
	Key string
	// Through is the result stream's last sequence when the entry was
	// erased: the results about the person up to it are gone, and the
	// ledger never applies them again.
	Through uint64
	// Results and DeadLetters count the messages erased.
	Results, DeadLetters int
	// Event is the audit event recorded.
	Event audit.CloudEvent
}

// Forget erases the person email names, for a right-to-erasure request:
//
//  1. their ledger entry is replaced by a marker that holds no personal
//     data, only when (Forgotten.At) and up to which result (Through):
//     results up to it are never applied again, even by a replica that
//     pulled one before the erasure;
//  2. every result event about them (terminal or deferred) up to Through
//     is deleted from the result stream, its storage overwritten, and so
//     is every drift report (package reconcile) that names them;
//  3. every dead letter of theirs is deleted from the dead-letter stream,
//     its storage overwritten;
//  4. an audit event (Kind "user", Verb "forgotten") records actor,
//     reason, the key and the counts; its subject is the key, never the
//     address.
//
// A request about the person that finishes later starts a new entry. The
// ledger's bucket, the result and dead-letter streams of this server are
// erased; backups, mirrors and the copies audit subscribers keep are not.
// Forget stops at the first failure; the audit event then records how far
// it came, and running it again finishes the erasure.
func Forget(ctx context.Context, js jetstream.JetStream, topo topology.Topology, email, actor, reason string, now time.Time) (ForgetReport, error) {
	switch {
	case strings.TrimSpace(actor) == "":
		return ForgetReport{}, audit.ErrNoActor
	case strings.TrimSpace(reason) == "":
		return ForgetReport{}, audit.ErrNoReason
	case messages.UserKey(email) == "":
		return ForgetReport{}, errors.New("ledger: forget: no address given")
	}
	rep := ForgetReport{Key: Key(email)}
	l, err := Open(ctx, js, topo)
	if err != nil {
		return rep, err
	}
	if rep.Through, err = l.erase(ctx, js, topo, rep.Key, now); err != nil {
		return rep, err
	}
	want := messages.UserKey(email)
	stepErr := func() error {
		n, err := eraseResults(ctx, js, topo, want, rep.Through)
		rep.Results = n
		if err != nil {
			return err
		}
		rep.DeadLetters, err = eraseDeadLetters(ctx, js, topo, want)
		return err
	}()
	data := map[string]any{
		"key": rep.Key, "through_result_sequence": rep.Through,
		"results_erased": rep.Results, "dead_letters_erased": rep.DeadLetters, "complete": stepErr == nil,
	}
	if stepErr != nil {
		data["error"] = stepErr.Error()
	}
	ev, err := audit.Publish(context.WithoutCancel(ctx), js, topo, audit.Event{
		Kind: "user", Verb: "forgotten", Subject: rep.Key, Actor: actor, Reason: reason, Data: data,
	}, now)
	rep.Event = ev
	if stepErr != nil {
		return rep, stepErr
	}
	if err != nil {
		return rep, fmt.Errorf("ledger: forget: erased, but recording it failed: %w", err)
	}
	return rep, nil
}

// erase replaces the entry under key with a Forgotten marker through the
// result stream's last sequence, read after the entry each time so that a
// result applied meanwhile is covered (its write makes the
// compare-and-set fail and the loop read both again).
func (l *Ledger) erase(ctx context.Context, js jetstream.JetStream, topo topology.Topology, key string, now time.Time) (uint64, error) {
	for range maxAttempts {
		_, rev, exists, err := l.read(ctx, key)
		if err != nil {
			return 0, err
		}
		through, err := lastResult(ctx, js, topo)
		if err != nil {
			return 0, err
		}
		rec := Record{Version: FormatVersion, State: StateUnknown, Requests: []Request{},
			Forgotten: &Forgotten{At: now.UTC(), Through: through}, Updated: now.UTC()}
		data, err := json.Marshal(rec)
		if err != nil {
			return 0, err
		}
		if exists {
			_, err = l.kv.Update(ctx, key, data, rev)
		} else {
			_, err = l.kv.Create(ctx, key, data)
		}
		switch {
		case err == nil:
			return through, nil
		case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
			continue
		default:
			return 0, fmt.Errorf("ledger: erase %s: %w", key, err)
		}
	}
	return 0, fmt.Errorf("%w: %s, %d attempts", ErrContention, key, maxAttempts)
}

// eraseResults deletes, overwriting their storage, the result events up
// to through whose user key is want. It returns how many it deleted.
func eraseResults(ctx context.Context, js jetstream.JetStream, topo topology.Topology, want string, through uint64) (int, error) {
	var seqs []uint64
	err := scanResults(ctx, js, topo, through, func(m jetstream.Msg, md *jetstream.MsgMetadata) error {
		if m.Subject() == topo.ResultPrefix+"."+driftKind {
			if driftMentions(m.Data(), want) {
				seqs = append(seqs, md.Sequence.Stream)
			}
			return nil
		}
		if ev, err := messages.DecodeEvent(m.Data()); err == nil && ev.Data.Email != "" && messages.UserKey(ev.Data.Email) == want {
			seqs = append(seqs, md.Sequence.Stream)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	s, err := js.Stream(ctx, topo.ResultStream)
	if err != nil {
		return 0, fmt.Errorf("ledger: stream %s: %w", topo.ResultStream, err)
	}
	return secureDelete(ctx, s, topo.ResultStream, seqs)
}

// driftKind is the audit kind of reconciliation's drift reports (package
// reconcile), whose entries name users.
const driftKind = "drift"

// driftMentions reports whether a drift report names a user whose key is
// want among its entries: the whole report is then erased (the next scan
// publishes another).
func driftMentions(data []byte, want string) bool {
	var ev struct {
		Data struct {
			Drift     []struct{ Email string } `json:"drift"`
			Unmanaged []struct{ Email string } `json:"unmanaged"`
		} `json:"data"`
	}
	if json.Unmarshal(data, &ev) != nil {
		return false
	}
	for _, e := range append(ev.Data.Drift, ev.Data.Unmanaged...) {
		if e.Email != "" && messages.UserKey(e.Email) == want {
			return true
		}
	}
	return false
}

// eraseDeadLetters deletes, overwriting their storage, the dead letters
// whose body names a user whose key is want.
func eraseDeadLetters(ctx context.Context, js jetstream.JetStream, topo topology.Topology, want string) (int, error) {
	s, err := js.Stream(ctx, topo.DeadLetterStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("ledger: stream %s: %w", topo.DeadLetterStream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("ledger: stream %s: %w", topo.DeadLetterStream, err)
	}
	var seqs []uint64
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("ledger: read %s/%d: %w", topo.DeadLetterStream, seq, err)
		}
		if e := messages.BestEffortEmail(m.Data); e != "" && messages.UserKey(e) == want {
			seqs = append(seqs, seq)
		}
	}
	return secureDelete(ctx, s, topo.DeadLetterStream, seqs)
}

// secureDelete deletes the messages seqs of s, overwriting their storage;
// one already gone is not an error and not counted.
func secureDelete(ctx context.Context, s jetstream.Stream, name string, seqs []uint64) (int, error) {
	n := 0
	for _, seq := range seqs {
		err := s.SecureDeleteMsg(ctx, seq)
		switch {
		case err == nil:
			n++
		case errors.Is(err, jetstream.ErrMsgNotFound):
		default:
			return n, fmt.Errorf("ledger: erase %s/%d: %w", name, seq, err)
		}
	}
	return n, nil
}
