// Package zoom is a small client for the parts of Zoom's REST API that user
// provisioning needs: Server-to-Server OAuth, create a user, look a user
// up, update, activate or deactivate, and delete one, and list or count
// the account's users. It returns typed errors (*APIError, *TokenError)
// that carry everything Zoom said, including its rate-limit headers, and
// it never logs.
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
	"strconv"
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

// Limiter paces calls to Zoom. A call the caller makes is the caller's to
// pace (Zoom's per-second limits count every call of the account, and the
// caller may have more to check between its pace and its call); the
// client waits on the Limiter before the requests it sends on its own: a
// request sent again after a 401 with a new token, and the pages EachUser
// walks. It gives up the request when Wait returns an error.
type Limiter interface {
	Wait(ctx context.Context, call Call) error
}

// Call describes an API call to the Limiter.
type Call struct {
	// Op names the call, e.g. "create user".
	Op string
	// Action is the request's action for POST /users ("create",
	// "ssoCreate", …), the operation for the lifecycle calls ("update",
	// "activate", "deactivate", "delete"), and empty for look-ups and
	// listings, which no action's quota holds.
	Action string
	// Label is Zoom's rate-limit label of the endpoint, LabelLight or
	// LabelMedium: Zoom counts each label's per-second quota on its own.
	Label string
}

// Zoom's rate-limit labels, the values of Call.Label.
const (
	// LabelLight is the label of every call but the listings.
	LabelLight = "Light"
	// LabelMedium is the label of GET /users (ListUsers, EachUser,
	// CountUsers).
	LabelMedium = "Medium"
)

// wait waits for the Limiter, if any, before a request the client sends
// on its own.
func (c *Client) wait(ctx context.Context, call Call) error {
	if c.limiter == nil {
		return nil
	}
	if err := c.limiter.Wait(ctx, call); err != nil {
		return fmt.Errorf("zoom: %s: wait for rate limiter: %w", call.Op, err)
	}
	return nil
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
	// RefreshBefore caps how long before its expiry a cached token is
	// replaced. The margin is a quarter of the lifetime the token was
	// issued with (expires_in), at most RefreshBefore: Zoom's 3,599 s
	// tokens are replaced a minute early, a 30 s token after 22.5 s. Zero
	// means one minute; a negative value means no early refresh.
	//
	// A token issued without a positive expires_in (missing, zero or
	// negative) is never replaced early: x/oauth2 treats a missing or zero
	// expires_in as "never expires". It is used until the API refuses it
	// with a 401, which fetches a new one and retries once.
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
	// refreshAt is when the token stops being fresh, on c.now's clock;
	// zero means never (no usable expires_in).
	refreshAt time.Time
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
	// ID may be empty for a pending user in a listing: Zoom has been
	// seen leaving it out there, while GET /users/{email} had it.
	ID          string `json:"id"`
	Email       string `json:"email"`
	FirstName   string `json:"first_name,omitempty"`
	LastName    string `json:"last_name,omitempty"`
	DisplayName string `json:"display_name,omitempty"`
	// Type is 1 Basic, 2 Licensed, 4 Unassigned or 99 None.
	Type int `json:"type"`
	// Status is UserActive, UserInactive or UserPending.
	Status string `json:"status,omitempty"`
	// Dept is the user's department.
	Dept string `json:"dept,omitempty"`
}

// Response is a successful answer with what the logs need about it.
type Response struct {
	// User is the user Zoom returned: zero for UpdateUser, SetUserStatus
	// and DeleteUser, whose answers carry none.
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
	body, err := json.Marshal(req)
	if err != nil {
		return Response{}, fmt.Errorf("zoom: create user: encode: %w", err)
	}
	return c.do(ctx, call{op: "create user", action: req.Action, method: http.MethodPost, url: c.baseURL + "/users", body: body, ok: isCreated, user: true})
}

// GetUser calls GET /users/{userId}, where idOrEmail is a user id or an
// email address. Errors as for CreateUser; a missing user is an *APIError
// matching ErrUserNotFound.
func (c *Client) GetUser(ctx context.Context, idOrEmail string) (Response, error) {
	if idOrEmail == "" {
		return Response{}, errors.New("zoom: get user: empty id")
	}
	return c.do(ctx, call{op: "get user", method: http.MethodGet, url: c.userURL(idOrEmail), ok: isOK, user: true})
}

// UpdateUser calls PATCH /users/{userId} with user, the JSON object of
// profile fields to change, sent byte for byte. idOrEmail is a user id or
// an email address. Any 2xx is success (Zoom answers 204 with no body);
// the Response carries no User. Errors as for CreateUser; a missing user
// is an *APIError matching ErrUserNotFound.
func (c *Client) UpdateUser(ctx context.Context, idOrEmail string, user json.RawMessage) (Response, error) {
	const op = "update user"
	if idOrEmail == "" {
		return Response{}, errors.New("zoom: " + op + ": empty id")
	}
	if len(user) == 0 || !json.Valid(user) {
		return Response{}, errors.New("zoom: " + op + ": body is not valid JSON")
	}
	return c.do(ctx, call{op: op, action: "update", method: http.MethodPatch, url: c.userURL(idOrEmail), body: user, ok: is2xx})
}

// User status actions for SetUserStatus.
const (
	StatusActivate   = "activate"
	StatusDeactivate = "deactivate"
)

// Bodies of PUT /users/{userId}/status, shared and never modified.
var (
	activateBody   = []byte(`{"action":"activate"}`)
	deactivateBody = []byte(`{"action":"deactivate"}`)
)

// SetUserStatus calls PUT /users/{userId}/status with action
// StatusActivate or StatusDeactivate; any other action is refused before
// any call. Any 2xx is success (Zoom documents 200, older copies 204); the
// Response carries no User. Errors as for CreateUser.
func (c *Client) SetUserStatus(ctx context.Context, idOrEmail string, action string) (Response, error) {
	const op = "set user status"
	var body []byte
	switch action {
	case StatusActivate:
		body = activateBody
	case StatusDeactivate:
		body = deactivateBody
	default:
		return Response{}, fmt.Errorf("zoom: %s: action %q is neither %q nor %q", op, sanitize(action, 40), StatusActivate, StatusDeactivate)
	}
	if idOrEmail == "" {
		return Response{}, errors.New("zoom: " + op + ": empty id")
	}
	return c.do(ctx, call{op: op, action: action, method: http.MethodPut, url: c.userURL(idOrEmail) + "/status", body: body, ok: is2xx})
}

// Delete actions for DeleteOptions.Action.
const (
	DeleteDisassociate = "disassociate"
	DeleteDelete       = "delete"
)

// DeleteOptions are the query parameters of DELETE /users/{userId}. Only
// the flags that are not nil and a non-empty TransferEmail are sent.
type DeleteOptions struct {
	// Action is DeleteDisassociate (the default when empty: the user is
	// removed from the account, not deleted) or DeleteDelete (the user is
	// deleted permanently).
	Action string
	// TransferEmail is the user who receives the transferred data; Zoom
	// requires it when the user has Zoom Events.
	TransferEmail string
	// The transfer_* flags: whether that kind of data goes to
	// TransferEmail.
	TransferMeeting, TransferWebinar, TransferRecording, TransferWhiteboard,
	TransferClipfiles, TransferNotes, TransferDocs *bool
}

// query encodes o, or says why it cannot be sent.
func (o DeleteOptions) query() (string, error) {
	q := url.Values{}
	switch o.Action {
	case "", DeleteDisassociate:
		q.Set("action", DeleteDisassociate)
	case DeleteDelete:
		q.Set("action", DeleteDelete)
	default:
		return "", fmt.Errorf("action %q is neither %q nor %q", sanitize(o.Action, 40), DeleteDisassociate, DeleteDelete)
	}
	if o.TransferEmail != "" {
		q.Set("transfer_email", o.TransferEmail)
	}
	for _, f := range []struct {
		name string
		v    *bool
	}{
		{"transfer_meeting", o.TransferMeeting},
		{"transfer_webinar", o.TransferWebinar},
		{"transfer_recording", o.TransferRecording},
		{"transfer_whiteboard", o.TransferWhiteboard},
		{"transfer_clipfiles", o.TransferClipfiles},
		{"transfer_notes", o.TransferNotes},
		{"transfer_docs", o.TransferDocs},
	} {
		if f.v != nil {
			q.Set(f.name, strconv.FormatBool(*f.v))
		}
	}
	return q.Encode(), nil
}

// DeleteUser calls DELETE /users/{userId} with the query opts describes;
// an unknown opts.Action is refused before any call. Any 2xx is success
// (Zoom answers 204); the Response carries no User. Errors as for
// CreateUser; a user already gone is an *APIError matching
// ErrUserNotFound.
func (c *Client) DeleteUser(ctx context.Context, idOrEmail string, opts DeleteOptions) (Response, error) {
	const op = "delete user"
	q, err := opts.query()
	if err != nil {
		return Response{}, fmt.Errorf("zoom: %s: %w", op, err)
	}
	if idOrEmail == "" {
		return Response{}, errors.New("zoom: " + op + ": empty id")
	}
	return c.do(ctx, call{op: op, action: "delete", method: http.MethodDelete, url: c.userURL(idOrEmail) + "?" + q, ok: is2xx})
}

// userURL is the URL of /users/{userId}.
func (c *Client) userURL(idOrEmail string) string {
	return c.baseURL + "/users/" + url.PathEscape(idOrEmail)
}

// call is one API request and what counts as its success.
type call struct {
	// op names the call; action is the request's action or operation the
	// Limiter is told.
	op, action, method, url string
	// medium says the endpoint's rate-limit label is Medium, not Light.
	medium bool
	body   []byte // nil: no body
	ok     func(status int) bool
	// user says a success body is a user object to decode: an unreadable
	// one is then a fault, not a success.
	user bool
	// into, if not nil, is where a success body is decoded instead, with
	// the same rule.
	into any
}

// label is the Limiter's Call.Label of k.
func (k *call) label() string {
	if k.medium {
		return LabelMedium
	}
	return LabelLight
}

func isCreated(status int) bool { return status == http.StatusCreated }
func isOK(status int) bool      { return status == http.StatusOK }
func is2xx(status int) bool     { return status >= 200 && status < 300 }

func (c *Client) do(ctx context.Context, k call) (Response, error) {
	tok, err := c.accessToken(ctx, nil)
	if err != nil {
		return Response{}, err
	}
	resp, err := c.send(ctx, &k, tok)
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusUnauthorized {
		// The token may have been revoked or expired early: fetch a new
		// one (once) and retry. A second 401 is returned as is.
		if tok, err = c.accessToken(ctx, tok); err != nil {
			return Response{}, err
		}
		// The retry counts against the budget too.
		if err := c.wait(ctx, Call{Op: k.op, Action: k.action, Label: k.label()}); err != nil {
			return Response{}, err
		}
		resp, err = c.send(ctx, &k, tok)
	}
	return resp, err
}

func (c *Client) send(ctx context.Context, k *call, tok *bearer) (Response, error) {
	op := k.op
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	var rd io.Reader
	if k.body != nil {
		rd = bytes.NewReader(k.body)
	}
	req, err := http.NewRequestWithContext(ctx, k.method, k.url, rd)
	if err != nil {
		// Its text could name the URL, and with it an email address.
		return Response{}, fmt.Errorf("zoom: %s: %w", op, transportError(err))
	}
	// Canonical keys set directly: Header.Set would allocate a slice for
	// each value on every call.
	req.Header["Authorization"] = tok.auth
	req.Header["Accept"] = acceptJSON
	if k.body != nil {
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
	if !k.ok(res.StatusCode) {
		return Response{}, newAPIError(op, res, data, c.now())
	}
	out := Response{
		StatusCode: res.StatusCode,
		TrackingID: res.Header.Get(HeaderTrackingID),
		RateLimit:  parseRateLimit(res.Header),
	}
	var into any = &out.User
	switch {
	case k.into != nil:
		into = k.into
	case !k.user:
		return out, nil // the body, if any, says nothing the caller needs
	}
	if err := json.Unmarshal(data, into); err != nil {
		// A 2xx we cannot read is not a rejection: a created user may well
		// exist. Report it as a server-side fault so the caller retries
		// (and finds such a user by its 409).
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
	if b := c.cur.Load(); b != nil && b != stale && c.fresh(b) {
		return b, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if b := c.cur.Load(); b != nil && b != stale && c.fresh(b) {
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
	b := &bearer{token: t, auth: []string{"Bearer " + t.AccessToken}}
	if life := issuedLifetime(t); life > 0 {
		// oauth2 sets Expiry on the wall clock; fresh reads c.now.
		t.Expiry = c.now().Add(time.Until(t.Expiry))
		margin := max(0, min(c.refreshBefore, life/4))
		b.refreshAt = t.Expiry.Add(-margin)
	} else {
		// No expires_in, or one already past (negative): refreshing by
		// the clock would fetch on every call, so rely on the 401.
		t.Expiry = time.Time{}
	}
	c.cur.Store(b)
	return b, nil
}

// issuedLifetime is the lifetime t was issued with: its ExpiresIn when
// x/oauth2 sets it (clientcredentials does not, as of v0.38), else the
// time left until Expiry just after the fetch, which x/oauth2 computed
// from expires_in. It is zero for a token without expiry.
func issuedLifetime(t *oauth2.Token) time.Duration {
	if t.Expiry.IsZero() {
		return 0
	}
	if t.ExpiresIn > 0 {
		return time.Duration(t.ExpiresIn) * time.Second
	}
	return time.Until(t.Expiry)
}

// fresh reports whether b may still be used without fetching a new token.
func (c *Client) fresh(b *bearer) bool {
	return b.refreshAt.IsZero() || c.now().Before(b.refreshAt)
}

// TokenValid reports whether a token can be had now, fetching one if needed.
// Readiness probes use it to tell "credentials accepted".
func (c *Client) TokenValid(ctx context.Context) error {
	_, err := c.accessToken(ctx, nil)
	return err
}
