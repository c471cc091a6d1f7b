package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/app"
	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/password"
)

// publishCommand publishes one request, from a JSON file, stdin or flags,
// with a Nats-Msg-Id, and optionally waits for its result.
func publishCommand(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) (err error) {
	fs := newFlagSet("publish")
	file := fs.String("file", "", "JSON request body to publish ('-' for stdin)")
	action := fs.String("action", "", "action (create, autoCreate, custCreate, ssoCreate); default: the body's")
	op := fs.String("op", "", "publish a lifecycle request instead: update, deactivate, activate or delete")
	deleteAction := fs.String("delete-action", "", "with --op delete --email: disassociate (Zoom's default) or delete")
	email := fs.String("email", "", "build the body from flags: the user's e-mail")
	userType := fs.Int("type", 1, "with --email: user type (1 Basic, 2 Licensed, 4 Unassigned, 99 None); with --op update, set only when given")
	first := fs.String("first-name", "", "with --email: first name")
	last := fs.String("last-name", "", "with --email: last name")
	display := fs.String("display-name", "", "with --email: display name")
	msgID := fs.String("msg-id", "", "request id, sent as Nats-Msg-Id (default: a new random id)")
	force := fs.Bool("force", false, "publish even if the body is invalid (to see a dead letter)")
	wait := fs.Duration("wait", 0, "wait this long for the request's result and print it (e.g. 10s)")
	asJSON := fs.Bool("json", false, "print JSON lines: the stream's acknowledgement, then with --wait each result event of the request as published")
	publicKeyFile := fs.String("password-public-key", "", "file holding the service's public key, as consumer password public-key prints it ($"+publicKeySetting+" may hold the key itself): the body's plain password is sealed for the service before it is published")
	sealPassword := fs.Bool("seal-password", true, "with a public key, seal the body's plain password (false: publish it as it is)")
	cfg, err := parseSettings(fs, args, getenv, natsSettings())
	if err != nil {
		return flagError(fs, stderr, err)
	}

	if *op != "" && !messages.Operation(*op).Valid() {
		return usageError("publish: --op: want update, deactivate, activate or delete, got %q", *op)
	}
	if *op != "" && *action != "" {
		return usageError("publish: give either --action or --op, not both")
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var body []byte
	switch {
	case *file != "" && *email != "":
		return usageError("publish: give either --file or --email, not both")
	case *file == "-":
		if body, err = io.ReadAll(io.LimitReader(stdin, messages.MaxBodyBytes+1)); err != nil {
			return fmt.Errorf("publish: read stdin: %w", err)
		}
	case *file != "":
		if body, err = os.ReadFile(*file); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
	case *email != "" && *op != "":
		if body, err = operationBody(messages.Operation(*op), *email, given, *userType, *first, *last, *display, *deleteAction); err != nil {
			return err
		}
	case *email != "":
		if *action == "" {
			return usageError("publish: --email needs --action or --op")
		}
		req := messages.Request{Action: messages.Action(*action), UserInfo: messages.UserInfo{
			Email: *email, Type: *userType, FirstName: *first, LastName: *last, DisplayName: *display,
		}}
		if body, err = json.Marshal(req); err != nil {
			return fmt.Errorf("publish: encode: %w", err)
		}
	default:
		return usageError("publish: give --file FILE, --file - (stdin) or --email with --action or --op")
	}

	var verr error
	subjectAction := *action
	if *op != "" {
		subjectAction, verr = *op, messages.CheckOperation(messages.Operation(*op), body)
	} else {
		var req messages.Request
		req, verr = messages.Decode(body)
		if subjectAction == "" {
			subjectAction = string(req.Action)
		}
	}
	if subjectAction == "" {
		return usageError("publish: the body has no valid action; give --action (or --op for a lifecycle request)")
	}
	if verr != nil && !*force {
		return &exitError{code: 1, msg: "publish: " + verr.Error() + " (use --force to publish it anyway)"}
	}
	if *op == "" && *sealPassword {
		pub, err := publicKey(*publicKeyFile, getenv)
		if err != nil {
			return err
		}
		if body, err = sealBodyPassword(body, verr, pub, stderr); err != nil {
			return err
		}
	}
	if *msgID == "" {
		*msgID = "publish-" + randomID()
	}

	nc, js, err := app.Connect(cfg, nopLogger())
	if err != nil {
		return err
	}
	defer nc.Close()
	defer func() { err = explainRefusal(nc, err) }()

	var results jetstream.ConsumeContext
	events := make(chan resultMsg, 16)
	if *wait > 0 {
		// Subscribe before publishing so the result cannot be missed.
		oc, err := js.OrderedConsumer(ctx, cfg.ResultStream, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{cfg.ResultPrefix + ".>"},
			DeliverPolicy:  jetstream.DeliverNewPolicy,
		})
		if err != nil {
			return fmt.Errorf("publish: watch results in %s: %w", cfg.ResultStream, err)
		}
		results, err = oc.Consume(func(m jetstream.Msg) {
			if ev, err := messages.DecodeEvent(m.Data()); err == nil && ev.Subject == *msgID {
				events <- resultMsg{ev: ev, raw: bytes.Clone(m.Data())}
			}
		})
		if err != nil {
			return fmt.Errorf("publish: watch results: %w", err)
		}
		defer results.Stop()
	}

	subject := cfg.Topology().RequestSubject(subjectAction)
	m := nats.NewMsg(subject)
	m.Data = body
	ack, err := js.PublishMsg(ctx, m, jetstream.WithMsgID(*msgID))
	if err != nil {
		return fmt.Errorf("publish: %s: %w", subject, err)
	}
	switch {
	case *asJSON:
		if err := json.NewEncoder(stdout).Encode(publishAck{RequestID: *msgID, Subject: subject, Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate}); err != nil {
			return err
		}
	case ack.Duplicate:
		fmt.Fprintf(stdout, "duplicate: request %s was already published (stream %s, sequence %d); nothing new stored\n", *msgID, ack.Stream, ack.Sequence)
	default:
		fmt.Fprintf(stdout, "published request %s to %s (stream %s, sequence %d)\n", *msgID, subject, ack.Stream, ack.Sequence)
	}
	if ack.Duplicate || *wait <= 0 {
		return nil
	}
	deadline := time.NewTimer(*wait)
	defer deadline.Stop()
	for {
		select {
		case r := <-events:
			if *asJSON {
				if _, err := stdout.Write(append(r.raw, '\n')); err != nil {
					return err
				}
			} else {
				fmt.Fprintln(stdout, formatEvent(r.ev))
			}
			if r.ev.Data.Outcome.Terminal() {
				return nil
			}
		case <-deadline.C:
			return &exitError{code: 1, msg: fmt.Sprintf("publish: no result for %s within %v (is `consumer run` running?)", *msgID, *wait)}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// resultMsg is a result event of the published request, decoded and as
// stored.
type resultMsg struct {
	ev  messages.Event
	raw []byte
}

// publishAck is `publish --json`'s first line: where the request went.
type publishAck struct {
	RequestID string `json:"request_id"`
	Subject   string `json:"subject"`
	Stream    string `json:"stream"`
	Sequence  uint64 `json:"sequence"`
	// Duplicate is true when the stream already had a request with this
	// id: nothing new was stored, and publish does not wait.
	Duplicate bool `json:"duplicate"`
}

// operationBody builds a lifecycle request from flags. An update sets only
// the profile fields given.
func operationBody(op messages.Operation, email string, given map[string]bool, userType int, first, last, display, deleteAction string) ([]byte, error) {
	if given["delete-action"] && op != messages.OpDelete {
		return nil, usageError("publish: --delete-action is for --op delete")
	}
	switch op {
	case messages.OpUpdate:
		user := map[string]any{}
		for flagName, field := range map[string]string{"first-name": "first_name", "last-name": "last_name", "display-name": "display_name"} {
			if given[flagName] {
				user[field] = map[string]string{"first-name": first, "last-name": last, "display-name": display}[flagName]
			}
		}
		if given["type"] {
			user["type"] = userType
		}
		if len(user) == 0 {
			return nil, usageError("publish: --op update --email needs a field to change: --first-name, --last-name, --display-name or --type")
		}
		return json.Marshal(map[string]any{"email": email, "user": user})
	case messages.OpDelete:
		req := map[string]string{"email": email}
		if deleteAction != "" {
			req["action"] = deleteAction
		}
		return json.Marshal(req)
	}
	return json.Marshal(map[string]string{"email": email})
}

// formatEvent renders a result event as one line for people.
func formatEvent(ev messages.Event) string {
	r := ev.Data
	s := fmt.Sprintf("%-11s %-22s %-24s", r.Outcome, r.RequestID, r.Email)
	switch r.Outcome {
	case messages.OutcomeCreated, messages.OutcomeExists:
		s += " zoom_user_id=" + r.ZoomUserID
	case messages.OutcomeDeferred:
		s += " retry_at=" + r.RetryAt
	case messages.OutcomeFailed:
		s += fmt.Sprintf(" reason=%s", r.Reason)
		if r.HTTPStatus != 0 {
			s += fmt.Sprintf(" http_status=%d zoom_code=%d", r.HTTPStatus, r.ZoomCode)
		}
		if r.ZoomMessage != "" {
			s += fmt.Sprintf(" message=%q", r.ZoomMessage)
		}
	}
	return s
}

func randomID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(errors.New("crypto/rand failed: " + err.Error()))
	}
	return hex.EncodeToString(b[:])
}

// publicKeySetting holds the service's public key itself (standard
// base64), for publishers that keep it in the environment.
const publicKeySetting = "PASSWORD_PUBLIC_KEY"

// publicKey returns the service's public key from --password-public-key
// (a file) or PASSWORD_PUBLIC_KEY, nil if neither is given. A key that
// does not read is a usage mistake, one line naming where it came from.
func publicKey(file string, getenv func(string) string) (*[password.KeySize]byte, error) {
	var text, from string
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, usageError("publish: --password-public-key: %v", err)
		}
		text, from = string(b), "--password-public-key "+file
	case getenv(publicKeySetting) != "":
		text, from = getenv(publicKeySetting), publicKeySetting
	default:
		return nil, nil
	}
	pub, err := password.ParsePublicKey(text)
	if err != nil {
		return nil, usageError("publish: %s: %v", from, err)
	}
	return pub, nil
}

// sealBodyPassword returns body with its plain password sealed for the
// service's public key pub, so that the request stream never holds it in
// clear; body as it is without pub, without a password, or with one
// already sealed. verr is the body's validation error: an invalid body
// (published with --force) cannot be rewritten, and is published as it
// is, with a warning on stderr if it may hold a password.
func sealBodyPassword(body []byte, verr error, pub *[password.KeySize]byte, stderr io.Writer) ([]byte, error) {
	if pub == nil {
		return body, nil
	}
	req, err := messages.Decode(body)
	if verr != nil || err != nil {
		if bytes.Contains(bytes.ToLower(body), []byte("password")) {
			fmt.Fprintln(stderr, "consumer: publish: warning: the body is invalid, so its password (if any) is published unsealed")
		}
		return body, nil
	}
	if req.UserInfo.Password == "" || password.IsSealed(req.UserInfo.Password) {
		return body, nil
	}
	if req.UserInfo.Password, err = password.Seal(pub, req.UserInfo.Password); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	// A valid request encodes to a body that decodes to it again.
	out, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("publish: encode: %w", err)
	}
	return out, nil
}
