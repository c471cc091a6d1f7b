// Command naive is the benchmark's naive loop: the simplest correct
// provisioning consumer, one message at a time. It fetches one request
// (a durable pull consumer, Fetch of 1), POSTs it to Zoom, publishes the
// result event and waits for the stream's ack, then acks the request. The
// token is fetched once and again after a 401; a 429 waits for
// Retry-After.
//
// It reads the service's environment variables (NATS_URL, ZOOM_API_URL,
// ZOOM_TOKEN_URL, ZOOM_ACCOUNT_ID, ZOOM_CLIENT_ID, ZOOM_CLIENT_SECRET) and
// runs until SIGTERM or SIGINT.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/testenv/bench/internal/peer"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "naive:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg, err := peer.ConfigFromEnv("naive")
	if err != nil {
		return err
	}
	nc, err := nats.Connect(cfg.NATSURL, nats.Name("naive"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, cfg.RequestStream, jetstream.ConsumerConfig{
		Durable:       cfg.Durable,
		FilterSubject: cfg.RequestSubject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxDeliver:    -1,
	})
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	l := &loop{js: js, cfg: cfg, http: peer.HTTPClient(1)}
	if l.token, err = peer.Token(ctx, l.http, cfg.Credentials()); err != nil {
		return err
	}
	for ctx.Err() == nil {
		msg, err := cons.Next(jetstream.FetchMaxWait(time.Second))
		if errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
			continue
		}
		if err != nil {
			return err
		}
		if err := l.handle(ctx, msg); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			fmt.Fprintln(os.Stderr, "naive:", err)
			_ = msg.Nak()
		}
	}
	return nil
}

type loop struct {
	js    jetstream.JetStream
	cfg   peer.Config
	http  *http.Client
	token string
}

func (l *loop) handle(ctx context.Context, msg jetstream.Msg) error {
	req, err := peer.ParseRequest(msg.Data())
	if err != nil {
		return err
	}
	md, err := msg.Metadata()
	if err != nil {
		return err
	}
	id := msg.Headers().Get(jetstream.MsgIDHeader)
	if id == "" {
		id = l.cfg.RequestStream + "-" + strconv.FormatUint(md.Sequence.Stream, 10)
	}
	userID, err := l.create(ctx, msg.Data())
	if err != nil {
		return err
	}
	body, err := peer.CreatedEvent(id, req, userID, md.Sequence.Stream, int(md.NumDelivered))
	if err != nil {
		return err
	}
	ev := nats.NewMsg(l.cfg.ResultSubject)
	ev.Header.Set("Content-Type", peer.ContentType)
	ev.Data = body
	if _, err := l.js.PublishMsg(ctx, ev, jetstream.WithMsgID(peer.ResultID(id))); err != nil {
		return err
	}
	return msg.Ack()
}

// create calls Zoom until it answers something other than 401 or 429.
func (l *loop) create(ctx context.Context, body []byte) (string, error) {
	for {
		userID, err := peer.CreateUser(ctx, l.http, l.cfg.APIURL, l.token, body)
		var se *peer.StatusError
		switch {
		case errors.As(err, &se) && se.Status == http.StatusUnauthorized:
			if l.token, err = peer.Token(ctx, l.http, l.cfg.Credentials()); err != nil {
				return "", err
			}
		case errors.Is(err, peer.ErrRateLimited):
			wait := time.Second
			if at, perr := time.Parse(time.RFC3339, se.RetryAfter); perr == nil {
				wait = max(time.Until(at), 10*time.Millisecond)
			}
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return "", ctx.Err()
			}
		default:
			return userID, err
		}
	}
}
