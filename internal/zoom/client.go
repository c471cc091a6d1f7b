// Package zoom is a small client for the parts of Zoom's REST API that user
// provisioning needs: Server-to-Server OAuth, create a user, and look a user
// up. It returns typed errors (*APIError, *TokenError) that carry everything
// Zoom said, including its rate-limit headers, and it never logs.
package zoom

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Default endpoints of Zoom's production API.
const (
	DefaultBaseURL  = "https://api.zoom.us/v2"
	DefaultTokenURL = "https://zoom.us/oauth/token"
)

// maxBodyBytes bounds how much of any response is read: Zoom's answers are
// small, and a gateway error page must not be able to exhaust memory.
const maxBodyBytes = 1 << 20

// Limiter paces calls to Zoom. *rate.Limiter from golang.org/x/time/rate
// satisfies it.
type Limiter interface {
	Wait(ctx context.Context) error
}

// Config configures a Client.
type Config struct {
	// AccountID, ClientID and ClientSecret identify the Server-to-Server
	// OAuth app. All three are required.
	AccountID, ClientID, ClientSecret string
	// BaseURL is the API base. Empty means DefaultBaseURL.
	BaseURL string
	// TokenURL is the OAuth token endpoint. Empty means DefaultTokenURL.
	TokenURL string
	// HTTPClient makes every request. Nil means a client with sensible
	// transport limits; its own Timeout should be zero since Timeout below
	// bounds each call.
	HTTPClient *http.Client
	// Timeout bounds each HTTP call (token fetch or API call). Zero means no
	// limit beyond the caller's context.
	Timeout time.Duration
	// RefreshBefore is how long before its expiry a cached token is
	// replaced. Zero means one minute.
	RefreshBefore time.Duration
	// Limiter, if not nil, is waited on before every API call (not token
	// fetches): Zoom's per-second limits count every call of the account.
	Limiter Limiter
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Client calls Zoom. It is safe for concurrent use; it caches one access
// token for all goroutines.
type Client struct {
	baseURL       string
	http          *http.Client
	timeout       time.Duration
	refreshBefore time.Duration
	limiter       Limiter
	now           func() time.Time
	creds         *clientcredentials.Config

	// cur is the cached token, read without locking by every call; mu
	// serialises fetching a new one.
	cur atomic.Pointer[bearer]
	mu  sync.Mutex
}

// bearer is a token with its Authorization header value, built once per
// token rather than once per call. The header slice is shared by every
// request that uses the token and never modified.
type bearer struct {
	token *oauth2.Token
	auth  []string
}

// Header values every API call sends, shared and never modified.
var (
	acceptJSON      = []string{"application/json"}
	contentTypeJSON = []string{"application/json"}
)

// New returns a Client for cfg. It makes no network call.
func New(cfg Config) (*Client, error) {
	switch {
	case cfg.AccountID == "":
		return nil, errors.New("zoom: account id is required")
	case cfg.ClientID == "":
		return nil, errors.New("zoom: client id is required")
	case cfg.ClientSecret == "":
		return nil, errors.New("zoom: client secret is required")
	}
	c := &Client{
		baseURL:       strings.TrimRight(cfg.BaseURL, "/"),
		http:          cfg.HTTPClient,
		timeout:       cfg.Timeout,
		refreshBefore: cfg.RefreshBefore,
		limiter:       cfg.Limiter,
		now:           cfg.Now,
	}
	if c.baseURL == "" {
		c.baseURL = DefaultBaseURL
	}
	if _, err := url.Parse(c.baseURL); err != nil {
		return nil, fmt.Errorf("zoom: base url: %w", err)
	}
	tokenURL := cfg.TokenURL
	if tokenURL == "" {
		tokenURL = DefaultTokenURL
	}
	if c.http == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 256
		c.http = &http.Client{Transport: t}
	}
	if c.refreshBefore == 0 {
		c.refreshBefore = time.Minute
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.creds = &clientcredentials.Config{
		ClientID:     cfg.ClientID,
		ClientSecret: cfg.ClientSecret,
		TokenURL:     tokenURL,
		// Zoom's S2S grant is not RFC 6749 client_credentials: it needs
		// grant_type=account_credentials plus account_id, sent in a form
		// body with Basic client authentication.
		EndpointParams: url.Values{
			"grant_type": {"account_credentials"},
			"account_id": {cfg.AccountID},
		},
		AuthStyle: oauth2.AuthStyleInHeader,
	}
	return c, nil
}

// CloseIdleConnections releases pooled connections (for shutdown and leak
// checks).
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// CreateUserRequest is the body of POST /users. UserInfo is the user_info
// object as JSON: its schema belongs to the request messages, this client
// only carries it.
type CreateUserRequest struct {
	Action   string          `json:"action"`
	UserInfo json.RawMessage `json:"user_info"`
}

// User is the part of Zoom's user object the provisioner uses.
type User struct {
	ID          string `json:"id"`
	Email       string `json:"email"`
	FirstName   string `json:"first_name,omitempty"`
	LastName    string `json:"last_name,omitempty"`
	DisplayName string `json:"display_name,omitempty"`
	Type        int    `json:"type"`
	Status      string `json:"status,omitempty"`
}

// Response is a successful answer with what the logs need about it.
type Response struct {
	User       User
	StatusCode int
	// TrackingID is Zoom's x-zm-trackingid, which Zoom support asks for.
	TrackingID string
	RateLimit  RateLimit
}

// CreateUser calls POST /users. A 401 makes it fetch a new token and try
// once more. Errors: *APIError for any non-2xx answer (errors.Is with
// ErrUserExists for a duplicate), *TokenError when no token could be had,
// or a transport error (time-out, connection reset) wrapped with context.
func (c *Client) CreateUser(ctx context.Context, req CreateUserRequest) (Response, error) {
	body, err := createUserBody(req)
	if err != nil {
		return Response{}, fmt.Errorf("zoom: create user: encode: %w", err)
	}
	return c.do(ctx, "create user", http.MethodPost, c.baseURL+"/users", body, http.StatusCreated)
}

// createUserBody returns json.Marshal(req). For the bodies the service
// sends (user_info as json.Marshal wrote it, one of the four actions) it
// splices the bytes together: json.Marshal would copy them unchanged, but
// only after a reflective walk and a second, compacting and HTML-escaping
// pass over user_info, which cost more than encoding user_info itself.
func createUserBody(req CreateUserRequest) ([]byte, error) {
	if !plainString(req.Action) || !marshalsAsIs(req.UserInfo) {
		return json.Marshal(req)
	}
	body := make([]byte, 0, len(`{"action":"","user_info":}`)+len(req.Action)+len(req.UserInfo))
	body = append(body, `{"action":"`...)
	body = append(body, req.Action...)
	body = append(body, `","user_info":`...)
	body = append(body, req.UserInfo...)
	return append(body, '}'), nil
}

// plainString reports whether json.Marshal writes s between quotes as it
// is: printable ASCII with nothing it escapes.
func plainString(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// marshalsAsIs reports whether json.Marshal copies raw unchanged: it is
// valid JSON, has no whitespace outside strings, and holds none of the
// characters json.Marshal escapes in a RawMessage (<, >, &, U+2028,
// U+2029).
func marshalsAsIs(raw json.RawMessage) bool {
	if !json.Valid(raw) {
		return false
	}
	inString, escaped := false, false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '<' || c == '>' || c == '&':
			return false
		case c == 0xE2 && i+2 < len(raw) && raw[i+1] == 0x80 && (raw[i+2] == 0xA8 || raw[i+2] == 0xA9):
			return false
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			return false
		}
	}
	return true
}

// GetUser calls GET /users/{userId}, where idOrEmail is a user id or an
// email address. Errors as for CreateUser; a missing user is an *APIError
// matching ErrUserNotFound.
func (c *Client) GetUser(ctx context.Context, idOrEmail string) (Response, error) {
	if idOrEmail == "" {
		return Response{}, errors.New("zoom: get user: empty id")
	}
	return c.do(ctx, "get user", http.MethodGet, c.baseURL+"/users/"+url.PathEscape(idOrEmail), nil, http.StatusOK)
}

func (c *Client) do(ctx context.Context, op, method, u string, body []byte, want int) (Response, error) {
	if c.limiter != nil {
		if err := c.limiter.Wait(ctx); err != nil {
			return Response{}, fmt.Errorf("zoom: %s: wait for rate limiter: %w", op, err)
		}
	}
	tok, err := c.accessToken(ctx, nil)
	if err != nil {
		return Response{}, err
	}
	resp, err := c.send(ctx, op, method, u, body, tok, want)
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusUnauthorized {
		// The token may have been revoked or expired early: fetch a new
		// one (once) and retry. A second 401 is returned as is.
		if tok, err = c.accessToken(ctx, tok); err != nil {
			return Response{}, err
		}
		if c.limiter != nil { // the retry counts against the budget too
			if err := c.limiter.Wait(ctx); err != nil {
				return Response{}, fmt.Errorf("zoom: %s: wait for rate limiter: %w", op, err)
			}
		}
		resp, err = c.send(ctx, op, method, u, body, tok, want)
	}
	return resp, err
}

func (c *Client) send(ctx context.Context, op, method, u string, body []byte, tok *bearer, want int) (Response, error) {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return Response{}, fmt.Errorf("zoom: %s: %w", op, err)
	}
	// Canonical keys set directly: Header.Set would allocate a slice for
	// each value on every call.
	req.Header["Authorization"] = tok.auth
	req.Header["Accept"] = acceptJSON
	if body != nil {
		req.Header["Content-Type"] = contentTypeJSON
	}
	res, err := c.http.Do(req)
	if err != nil {
		return Response{}, fmt.Errorf("zoom: %s: %w", op, transportError(err))
	}
	defer res.Body.Close()
	data, err := readBody(res)
	if err != nil {
		return Response{}, fmt.Errorf("zoom: %s: read response: %w", op, transportError(err))
	}
	if res.StatusCode != want {
		return Response{}, newAPIError(op, res, data, c.now())
	}
	out := Response{
		StatusCode: res.StatusCode,
		TrackingID: res.Header.Get(HeaderTrackingID),
		RateLimit:  parseRateLimit(res.Header),
	}
	if err := json.Unmarshal(data, &out.User); err != nil {
		// A 2xx we cannot read is not a rejection: the user may well exist.
		// Report it as a server-side fault so the caller retries and finds
		// the user by its 409.
		return Response{}, &APIError{Op: op, StatusCode: http.StatusBadGateway, Message: "unreadable success response: " + err.Error(), TrackingID: out.TrackingID}
	}
	return out, nil
}

// readBody reads at most maxBodyBytes of the response body, into a buffer
// of the announced length when there is one (Zoom's answers have it).
func readBody(res *http.Response) ([]byte, error) {
	if n := res.ContentLength; n > 0 && n <= maxBodyBytes {
		data := make([]byte, n)
		if _, err := io.ReadFull(res.Body, data); err != nil {
			return nil, err
		}
		return data, nil
	}
	return io.ReadAll(io.LimitReader(res.Body, maxBodyBytes))
}

// transportError strips the URL from *url.Error: GET /users/{email} would
// otherwise put an email address into every error string and log line.
func transportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// accessToken returns the cached token, fetching a new one when there is
// none, when it is about to expire, or when stale is the cached token (the
// API just refused it). A fresh cached token is read without locking.
func (c *Client) accessToken(ctx context.Context, stale *bearer) (*bearer, error) {
	if b := c.cur.Load(); b != nil && b != stale && c.fresh(b.token) {
		return b, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if b := c.cur.Load(); b != nil && b != stale && c.fresh(b.token) {
		return b, nil // fetched by another caller meanwhile
	}
	fetchCtx := context.WithValue(ctx, oauth2.HTTPClient, c.http)
	if c.timeout > 0 {
		var cancel context.CancelFunc
		fetchCtx, cancel = context.WithTimeout(fetchCtx, c.timeout)
		defer cancel()
	}
	t, err := c.creds.Token(fetchCtx)
	if err != nil {
		if stale != nil {
			// The API refused it: never hand it out again.
			c.cur.CompareAndSwap(stale, nil)
		}
		return nil, newTokenError(err)
	}
	if !t.Expiry.IsZero() {
		// oauth2 sets Expiry on the wall clock; fresh reads c.now.
		t.Expiry = c.now().Add(time.Until(t.Expiry))
	}
	b := &bearer{token: t, auth: []string{"Bearer " + t.AccessToken}}
	c.cur.Store(b)
	return b, nil
}

// fresh reports whether t may still be used: it does not expire within
// refreshBefore.
func (c *Client) fresh(t *oauth2.Token) bool {
	return t.Expiry.IsZero() || c.now().Add(c.refreshBefore).Before(t.Expiry)
}

// TokenValid reports whether a token can be had now, fetching one if needed.
// Readiness probes use it to tell "credentials accepted".
func (c *Client) TokenValid(ctx context.Context) error {
	_, err := c.accessToken(ctx, nil)
	return err
}
