// Command watermillpeer is the benchmark's Watermill peer: a Zoom
// provisioning consumer built the way the Watermill and watermill-nats
// documentation suggest, as an outside team would write one.
//
//   - watermill-nats pkg/nats with JetStream enabled (the docs recommend
//     it over the beta pkg/jetstream): a durable push consumer bound to
//     the request subject, 64 queue subscriptions in one queue group,
//     TrackMsgId and synchronous acks (the docs' conditions for
//     exactly-once);
//   - a message.Router with the PoisonQueue (to the dead-letter subject),
//     Retry and Recoverer middlewares, in the order of Watermill's
//     examples;
//   - per request one token POST (clientcredentials, Zoom's
//     account_credentials grant), one POST /v2/users, and a CloudEvents
//     result returned to the router, which publishes it with Nats-Msg-Id
//     "<request id>:result" and waits for the stream's ack before the
//     request is acked.
//
// It reads the service's environment variables (NATS_URL, ZOOM_API_URL,
// ZOOM_TOKEN_URL, ZOOM_ACCOUNT_ID, ZOOM_CLIENT_ID, ZOOM_CLIENT_SECRET) and
// runs until SIGTERM or SIGINT.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/ThreeDotsLabs/watermill/message/router/plugin"
	"github.com/nats-io/nats.go"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/zoomprov/consumer/testenv/bench/internal/peer"
)

// subscribers is the number of queue subscriptions, and so of requests
// handled at once (each subscription waits for its message's ack).
const subscribers = 64

// Metadata keys the unmarshaler adds from the JetStream delivery.
const (
	metaStreamSeq = "stream_sequence"
	metaDelivered = "num_delivered"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "watermillpeer:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := peer.ConfigFromEnv("watermill-peer")
	if err != nil {
		return err
	}
	logger := watermill.NewStdLogger(false, false)
	natsOpts := []nats.Option{
		nats.Name("watermill-peer"),
		nats.RetryOnFailedConnect(true),
		nats.Timeout(30 * time.Second),
		nats.ReconnectWait(time.Second),
	}

	sub, err := wmnats.NewSubscriber(wmnats.SubscriberConfig{
		URL:              cfg.NATSURL,
		QueueGroupPrefix: cfg.Durable,
		SubscribersCount: subscribers,
		CloseTimeout:     30 * time.Second,
		AckWaitTimeout:   30 * time.Second,
		NatsOptions:      natsOpts,
		Unmarshaler:      requestUnmarshaler{stream: cfg.RequestStream},
		JetStream: wmnats.JetStreamConfig{
			SubscribeOptions: []nats.SubOpt{nats.DeliverAll(), nats.AckExplicit()},
			TrackMsgId:       true,
			AckAsync:         false,
			DurablePrefix:    cfg.Durable,
		},
	}, logger)
	if err != nil {
		return fmt.Errorf("subscriber: %w", err)
	}
	pub, err := wmnats.NewPublisher(wmnats.PublisherConfig{
		URL:         cfg.NATSURL,
		NatsOptions: natsOpts,
		Marshaler:   &wmnats.NATSMarshaler{},
		JetStream:   wmnats.JetStreamConfig{TrackMsgId: true},
	}, logger)
	if err != nil {
		return fmt.Errorf("publisher: %w", err)
	}

	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 30 * time.Second}, logger)
	if err != nil {
		return err
	}
	router.AddPlugin(plugin.SignalsHandler)
	poison, err := middleware.PoisonQueue(pub, cfg.DeadLetterSubject)
	if err != nil {
		return err
	}
	router.AddMiddleware(
		poison,
		middleware.Retry{MaxRetries: 3, InitialInterval: 100 * time.Millisecond, Logger: logger}.Middleware,
		middleware.Recoverer,
	)
	h := &handler{http: peer.HTTPClient(subscribers), creds: cfg.Credentials(), apiURL: cfg.APIURL}
	router.AddHandler("provision-ssoCreate", cfg.RequestSubject, sub, cfg.ResultSubject, pub, h.handle)
	return router.Run(context.Background())
}

// requestUnmarshaler is watermill-nats' NATSMarshaler plus what a request
// needs: the request id from Nats-Msg-Id (the NATSMarshaler takes the UUID
// from its own header, which HRIS publishers do not set, and drops
// Nats-Msg-Id), and the stream sequence and delivery count.
type requestUnmarshaler struct{ stream string }

// Unmarshal implements watermill-nats' Unmarshaler.
func (u requestUnmarshaler) Unmarshal(m *nats.Msg) (*message.Message, error) {
	var base wmnats.NATSMarshaler
	msg, err := base.Unmarshal(m)
	if err != nil {
		return nil, err
	}
	md, err := m.Metadata()
	if err != nil {
		return nil, err
	}
	if msg.UUID == "" {
		msg.UUID = m.Header.Get(nats.MsgIdHdr)
	}
	if msg.UUID == "" {
		msg.UUID = u.stream + "-" + strconv.FormatUint(md.Sequence.Stream, 10)
	}
	msg.Metadata.Set(metaStreamSeq, strconv.FormatUint(md.Sequence.Stream, 10))
	msg.Metadata.Set(metaDelivered, strconv.FormatUint(md.NumDelivered, 10))
	return msg, nil
}

// handler provisions one request.
type handler struct {
	http   *http.Client
	creds  *clientcredentials.Config
	apiURL string
}

func (h *handler) handle(msg *message.Message) ([]*message.Message, error) {
	ctx := msg.Context()
	req, err := peer.ParseRequest(msg.Payload)
	if err != nil {
		return nil, err
	}
	tok, err := peer.Token(ctx, h.http, h.creds)
	if err != nil {
		return nil, err
	}
	userID, err := peer.CreateUser(ctx, h.http, h.apiURL, tok, msg.Payload)
	if err != nil {
		return nil, err
	}
	seq, _ := strconv.ParseUint(msg.Metadata.Get(metaStreamSeq), 10, 64)
	attempt, _ := strconv.Atoi(msg.Metadata.Get(metaDelivered))
	body, err := peer.CreatedEvent(msg.UUID, req, userID, seq, attempt)
	if err != nil {
		return nil, err
	}
	out := message.NewMessage(peer.ResultID(msg.UUID), body)
	out.Metadata.Set("Content-Type", peer.ContentType)
	return []*message.Message{out}, nil
}
