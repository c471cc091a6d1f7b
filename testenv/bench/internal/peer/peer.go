// Package peer holds what the benchmark's peer consumers (the Watermill
// consumer and the naive loop) share: their configuration, which uses the
// service's environment variables, the Zoom calls as an outside developer
// would write them with net/http and golang.org/x/oauth2, and the result
// event, which has the same shape as the service's
// (internal/messages.Event) but is encoded with encoding/json.
package peer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Config is a peer's configuration, read from the same environment
// variables as `consumer run`.
type Config struct {
	NATSURL                           string
	APIURL, TokenURL                  string
	AccountID, ClientID, ClientSecret string
	RequestStream, RequestSubject     string
	ResultSubject, DeadLetterSubject  string
	Durable                           string
}

// ConfigFromEnv reads NATS_URL, ZOOM_API_URL, ZOOM_TOKEN_URL,
// ZOOM_ACCOUNT_ID, ZOOM_CLIENT_ID and ZOOM_CLIENT_SECRET; the subjects are
// the service's defaults for ssoCreate, and durable names the peer's
// consumer.
func ConfigFromEnv(durable string) (Config, error) {
	c := Config{
		NATSURL:           os.Getenv("NATS_URL"),
		APIURL:            os.Getenv("ZOOM_API_URL"),
		TokenURL:          os.Getenv("ZOOM_TOKEN_URL"),
		AccountID:         os.Getenv("ZOOM_ACCOUNT_ID"),
		ClientID:          os.Getenv("ZOOM_CLIENT_ID"),
		ClientSecret:      os.Getenv("ZOOM_CLIENT_SECRET"),
		RequestStream:     "ZOOM_USERS",
		RequestSubject:    "zoom.users.create.ssoCreate",
		ResultSubject:     "zoom.users.result.created",
		DeadLetterSubject: "zoom.users.dlq.ssoCreate",
		Durable:           durable,
	}
	for name, v := range map[string]string{
		"NATS_URL": c.NATSURL, "ZOOM_API_URL": c.APIURL, "ZOOM_TOKEN_URL": c.TokenURL,
		"ZOOM_ACCOUNT_ID": c.AccountID, "ZOOM_CLIENT_ID": c.ClientID, "ZOOM_CLIENT_SECRET": c.ClientSecret,
	} {
		if v == "" {
			return Config{}, fmt.Errorf("%s is not set", name)
		}
	}
	return c, nil
}

// Credentials is Zoom's Server-to-Server OAuth grant: not RFC 6749
// client_credentials but grant_type=account_credentials with account_id,
// Basic client authentication, as internal/zoom configures it.
func (c Config) Credentials() *clientcredentials.Config {
	return &clientcredentials.Config{
		ClientID:     c.ClientID,
		ClientSecret: c.ClientSecret,
		TokenURL:     c.TokenURL,
		EndpointParams: url.Values{
			"grant_type": {"account_credentials"},
			"account_id": {c.AccountID},
		},
		AuthStyle: oauth2.AuthStyleInHeader,
	}
}

// HTTPClient is net/http with an idle pool as large as the concurrency:
// Go's default keeps two idle connections per host, so 64 goroutines
// would open and close a connection for almost every call.
func HTTPClient(concurrency int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = max(concurrency, 2)
	return &http.Client{Transport: t, Timeout: 15 * time.Second}
}

// Token fetches a new access token with one POST to the token endpoint
// (clientcredentials.Config.Token does not cache).
func Token(ctx context.Context, hc *http.Client, cc *clientcredentials.Config) (string, error) {
	tok, err := cc.Token(context.WithValue(ctx, oauth2.HTTPClient, hc))
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	return tok.AccessToken, nil
}

// StatusError is a Zoom answer other than 201 Created.
type StatusError struct {
	Status int
	Body   string
	// RetryAfter is Zoom's Retry-After header (an RFC 3339 time).
	RetryAfter string
}

// Error names the status and Zoom's body.
func (e *StatusError) Error() string {
	return fmt.Sprintf("zoom answered %d: %s", e.Status, e.Body)
}

// ErrRateLimited is wrapped by a StatusError with status 429 (see Is).
var ErrRateLimited = errors.New("zoom rate limit")

// Is makes errors.Is(err, ErrRateLimited) hold for a 429.
func (e *StatusError) Is(target error) bool {
	return target == ErrRateLimited && e.Status == http.StatusTooManyRequests
}

// CreateUser sends body (a request's JSON, which is Zoom's create-user
// body) to POST /users and returns the new user's id.
func CreateUser(ctx context.Context, hc *http.Client, apiURL, token string, body []byte) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, apiURL+"/users", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return "", err
	}
	if res.StatusCode != http.StatusCreated {
		return "", &StatusError{Status: res.StatusCode, Body: string(b), RetryAfter: res.Header.Get("Retry-After")}
	}
	var u struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &u); err != nil {
		return "", fmt.Errorf("zoom user: %w", err)
	}
	return u.ID, nil
}

// Request is the part of a request message a peer reads.
type Request struct {
	Action   string `json:"action"`
	UserInfo struct {
		Email string `json:"email"`
	} `json:"user_info"`
}

// ParseRequest decodes a request body.
func ParseRequest(body []byte) (Request, error) {
	var r Request
	if err := json.Unmarshal(body, &r); err != nil {
		return Request{}, fmt.Errorf("request: %w", err)
	}
	return r, nil
}

// Result is the data of a result event (the service's
// messages.Result, field for field).
type Result struct {
	RequestID      string `json:"request_id"`
	Action         string `json:"action"`
	Email          string `json:"email"`
	Outcome        string `json:"outcome"`
	ZoomUserID     string `json:"zoom_user_id"`
	HTTPStatus     int    `json:"http_status"`
	ZoomCode       int    `json:"zoom_code"`
	ZoomMessage    string `json:"zoom_message"`
	Reason         string `json:"reason"`
	RetryAt        string `json:"retry_at"`
	Attempt        int    `json:"attempt"`
	StreamSequence uint64 `json:"stream_sequence"`
}

// Event is a CloudEvents 1.0 structured-mode result event (the service's
// messages.Event).
type Event struct {
	SpecVersion     string `json:"specversion"`
	ID              string `json:"id"`
	Source          string `json:"source"`
	Type            string `json:"type"`
	Subject         string `json:"subject"`
	Time            string `json:"time"`
	DataContentType string `json:"datacontenttype"`
	Data            Result `json:"data"`
}

// ContentType is the Content-Type header of a result event.
const ContentType = "application/cloudevents+json"

// ResultID is the result event's id and Nats-Msg-Id for a request id.
func ResultID(requestID string) string { return requestID + ":result" }

// CreatedEvent encodes the event for a request Zoom created.
func CreatedEvent(requestID string, req Request, userID string, seq uint64, attempt int) ([]byte, error) {
	return json.Marshal(Event{
		SpecVersion:     "1.0",
		ID:              ResultID(requestID),
		Source:          "zoom-provisioner",
		Type:            "zoom.user.provisioning.created",
		Subject:         requestID,
		Time:            time.Now().UTC().Format(time.RFC3339Nano),
		DataContentType: "application/json",
		Data: Result{
			RequestID: requestID, Action: req.Action, Email: req.UserInfo.Email, Outcome: "created",
			ZoomUserID: userID, HTTPStatus: http.StatusCreated, Attempt: attempt, StreamSequence: seq,
		},
	})
}
