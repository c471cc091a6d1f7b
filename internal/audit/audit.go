// Package audit records what operators do (open a quota gate, decide on
// the guard, replay or purge dead letters, forget a person) as CloudEvents
// on the result stream, beside every request's outcome, so that each
// change is kept with who made it and why. The CLI and the console record
// the same events for the same actions.
package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/topology"
)

// Event is one operator action.
type Event struct {
	// Kind is what was acted on ("quota", "guard", "dlq", "user"): the
	// event goes to <result prefix>.<Kind>.
	Kind string
	// Verb is what was done ("opened", "released", "replayed", ...): the
	// event type is zoom.user.provisioning.<Kind>.<Verb>.
	Verb string
	// Subject names what it was about (a scope, a request id); it becomes
	// the CloudEvents subject.
	Subject string
	// Actor is who did it; Reason why.
	Actor, Reason string
	// Data are the action's other facts, merged into the event's data
	// beside actor and reason.
	Data map[string]any
}

// ErrNoActor and ErrNoReason: an action is recorded with both.
var (
	ErrNoActor  = errors.New("audit: an operator action needs an actor")
	ErrNoReason = errors.New("audit: an operator action needs a reason (--reason)")
)

// CloudEvent is an audit event as published.
type CloudEvent struct {
	SpecVersion     string         `json:"specversion"`
	ID              string         `json:"id"`
	Source          string         `json:"source"`
	Type            string         `json:"type"`
	Subject         string         `json:"subject,omitempty"`
	Time            string         `json:"time"`
	DataContentType string         `json:"datacontenttype"`
	Data            map[string]any `json:"data"`
}

// Type is the CloudEvents type of an action.
func Type(kind, verb string) string { return messages.EventTypePrefix + kind + "." + verb }

// New builds the CloudEvent of e at now, with a unique id.
func New(e Event, now time.Time) (CloudEvent, error) {
	switch {
	case strings.TrimSpace(e.Actor) == "":
		return CloudEvent{}, ErrNoActor
	case strings.TrimSpace(e.Reason) == "":
		return CloudEvent{}, ErrNoReason
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	data := map[string]any{}
	for k, v := range e.Data {
		data[k] = v
	}
	data["actor"], data["reason"] = e.Actor, e.Reason
	return CloudEvent{
		SpecVersion:     messages.SpecVersion,
		ID:              fmt.Sprintf("%s.%s:%d:%s", e.Kind, e.Verb, now.UnixNano(), hex.EncodeToString(b[:])),
		Source:          messages.EventSource,
		Type:            Type(e.Kind, e.Verb),
		Subject:         e.Subject,
		Time:            now.UTC().Format(time.RFC3339Nano),
		DataContentType: "application/json",
		Data:            data,
	}, nil
}

// Publish records e on the result stream and waits for the stream's
// acknowledgement. It returns the event as published.
func Publish(ctx context.Context, js jetstream.JetStream, t topology.Topology, e Event, now time.Time) (CloudEvent, error) {
	ev, err := New(e, now)
	if err != nil {
		return ev, err
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return ev, err
	}
	m := nats.NewMsg(t.ResultPrefix + "." + e.Kind)
	m.Data = data
	m.Header.Set("Content-Type", messages.ContentTypeCloudEvents)
	if _, err := js.PublishMsg(ctx, m, jetstream.WithMsgID(ev.ID), jetstream.WithExpectStream(t.ResultStream)); err != nil {
		return ev, fmt.Errorf("audit: record %s: %w", ev.Type, err)
	}
	return ev, nil
}

// DefaultActor is the operating system's name of the user running the
// command, for --actor.
func DefaultActor() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if n := os.Getenv("USER"); n != "" {
		return n
	}
	return "unknown"
}
