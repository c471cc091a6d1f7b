// The package comment lives in nats.go.

package testenv

import (
	crand "crypto/rand"
	"encoding/base64"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Defaults used by NewSimulator when the corresponding SimConfig field is
// zero.
const (
	DefaultSimAccountID           = "sim-account"
	DefaultSimClientID            = "sim-client"
	DefaultSimClientSecret        = "sim-secret"
	DefaultSimTokenTTL            = time.Hour // Zoom S2S tokens live 3600 s.
	DefaultSimDailyWindow         = 24 * time.Hour
	DefaultSimMaxRecordedRequests = 100000
	DefaultSimTimeoutDelay        = 30 * time.Second
	// DefaultSimMaxPageSize is the largest page_size GET /v2/users serves:
	// Zoom's current Users spec allows up to 2,000 (the pagination guide
	// says 300 for "light" retrieval; reference §9 flags the conflict).
	DefaultSimMaxPageSize = 2000
	// DefaultSimPageTokenTTL is how long a next_page_token of GET
	// /v2/users is accepted: 15 minutes, as Zoom documents (reference §9).
	DefaultSimPageTokenTTL = 15 * time.Minute
)

// Route templates used as keys of SimStats.Requests and in
// RecordedRequest.Route. Requests that match no route are keyed by their
// method and escaped path.
const (
	RouteToken      = "POST /oauth/token"
	RouteCreateUser = "POST /v2/users"
	RouteGetUser    = "GET /v2/users/{userId}"
	RouteUserEmail  = "GET /v2/users/email"
	RouteListUsers  = "GET /v2/users"
)

// Values of the X-RateLimit-Type header, also the keys of
// SimStats.RateLimited.
const (
	RateLimitQPS   = "QPS"
	RateLimitDaily = "Daily-limit"
)

// SimConfig configures a Simulator. Zero values mean the documented defaults.
type SimConfig struct {
	// AccountID, ClientID and ClientSecret are the Server-to-Server OAuth
	// credentials the token endpoint accepts. Defaults: DefaultSimAccountID,
	// DefaultSimClientID, DefaultSimClientSecret.
	AccountID, ClientID, ClientSecret string

	// TokenTTL is the access-token lifetime on the sim clock; zero means
	// DefaultSimTokenTTL.
	TokenTTL time.Duration

	// TokenExpiresIn is what token answers say in expires_in. The default
	// is TokenTTL in whole seconds, as Zoom does; the other values mimic
	// gateways that leave it out. Tokens expire after TokenTTL either way.
	TokenExpiresIn ExpiresIn

	// RatePerSecond is the "Light" per-second limit shared by all the
	// Light /v2 endpoints (every route but RouteListUsers), counted in
	// fixed one-second windows of the sim clock. Zero means unlimited.
	RatePerSecond int

	// MediumRatePerSecond is the "Medium" per-second limit, which only
	// RouteListUsers draws from among the simulated routes. Zoom counts
	// each label's quota on its own (reference §2.1), so Medium calls do
	// not use up the Light limit, nor the reverse. Zero means unlimited.
	MediumRatePerSecond int

	// MaxPageSize is the largest page_size GET /v2/users serves; a larger
	// one is served at MaxPageSize. Zero means DefaultSimMaxPageSize. Tests
	// set a small one to exercise pagination with few users.
	MaxPageSize int

	// DailyCreateLimit is how many POST /v2/users requests with
	// action=create are admitted per daily window. Zero means unlimited.
	DailyCreateLimit int

	// DailyWindow is the length of the quota "day". Windows are aligned with
	// time.Truncate, so the default of 24h resets at 00:00 UTC. The sandbox
	// uses a few seconds so that the reset comes quickly.
	DailyWindow time.Duration

	// OmitRateLimitHeaders makes 429s come without X-RateLimit-Type and
	// Retry-After, as Zoom sometimes does. The message still says which limit
	// was hit.
	OmitRateLimitHeaders bool

	// Latency is real (wall-clock) time added before answering every
	// admitted /v2 request.
	Latency time.Duration

	// PhoneLicenses is the number of Zoom Phone licences available for
	// users created with feature.zoom_phone=true. Zero means none (404/1102);
	// -1 means unlimited.
	PhoneLicenses int

	// MaxRecordedRequests bounds the log returned by Requests; the oldest
	// entries are dropped first. Zero means DefaultSimMaxRecordedRequests, a
	// negative value means unbounded.
	MaxRecordedRequests int

	// Users sizes the simulator's per-user tables up front for this many
	// users (0: they grow as users come). The bench's million users would
	// otherwise grow them mid-run, on the CPU the service it measures runs
	// on.
	Users int

	// Now is the sim clock used for token expiry, next_page_token expiry
	// and rate-limit windows. Nil means time.Now. Delays (Latency,
	// Fault.Delay) always use real time.
	Now func() time.Time

	// ManagedDomains are the account's managed (associated) email domains,
	// compared case-insensitively. Zoom refuses to disassociate their users
	// (400, code 1107); they must be deleted. SetManagedDomain changes the
	// set later.
	ManagedDomains []string

	// StatusNoContent makes PUT /v2/users/{userId}/status answer 204, as
	// older copies of Zoom's reference say, instead of the 200 of the
	// current one.
	StatusNoContent bool
}

// ExpiresIn says what the token endpoint puts in its answers' expires_in.
type ExpiresIn int

// The expires_in variants.
const (
	ExpiresInTTL     ExpiresIn = iota // TokenTTL in whole seconds
	ExpiresInOmitted                  // no expires_in field
	ExpiresInZero                     // "expires_in":0
)

// Fault is a scripted misbehaviour of the simulator. Exactly one of Drop,
// HTML, EmptyBody or a JSON body (Status set) decides the answer, in that
// order of precedence; a Fault with only Delay set answers normally after
// the delay.
type Fault struct {
	// Status is the HTTP status to answer. With HTML or EmptyBody and no
	// Status, 502 is used.
	Status int
	// Code is the Zoom code in the JSON body; zero means Status.
	Code int
	// Message is the JSON body's message; empty means http.StatusText(Status).
	Message string
	// HTML makes the body an HTML gateway page (Content-Type text/html), like
	// Cloudflare's 502.
	HTML bool
	// EmptyBody makes the body empty.
	EmptyBody bool
	// Drop closes the TCP connection without any response.
	Drop bool
	// AfterCreate first really performs the request and then fails as
	// configured: "Zoom did it but the response never arrived". It applies
	// to every route: POST /v2/users stores the user and counts it in
	// Creations, PATCH, PUT status and DELETE change or remove it, and the
	// call appears in History with AnswerLost set.
	AfterCreate bool
	// Delay is extra real time waited before answering, e.g. longer than the
	// client's timeout. If the client gives up during the delay the request
	// is abandoned; without AfterCreate nothing was created.
	Delay time.Duration
	// Headers are extra response headers, e.g. Retry-After.
	Headers map[string]string
}

// FaultKind names the kind of an injected fault in SimStats.Faults and
// RecordedRequest.Fault.
type FaultKind string

// Fault kinds. The "-after-create" variants are faults with AfterCreate set,
// on any route: performed, then the answer lost.
const (
	FaultNone              FaultKind = ""
	FaultStatus            FaultKind = "status"
	FaultStatusAfterCreate FaultKind = "status-after-create"
	FaultHTML              FaultKind = "html"
	FaultHTMLAfterCreate   FaultKind = "html-after-create"
	FaultEmpty             FaultKind = "empty"
	FaultEmptyAfterCreate  FaultKind = "empty-after-create"
	FaultDrop              FaultKind = "drop"
	FaultDropAfterCreate   FaultKind = "drop-after-create"
	FaultDelay             FaultKind = "delay"
	FaultTokenOutage       FaultKind = "token-outage"
)

// Kind reports how the fault will answer.
func (f Fault) Kind() FaultKind {
	var k FaultKind
	switch {
	case f.Drop:
		k = FaultDrop
	case f.HTML:
		k = FaultHTML
	case f.EmptyBody:
		k = FaultEmpty
	case f.Status != 0:
		k = FaultStatus
	case f.Delay > 0:
		return FaultDelay
	default:
		return FaultNone
	}
	if f.AfterCreate {
		k += "-after-create"
	}
	return k
}

// RandomFaults configures probabilistic faults for chaos tests. Shares are
// probabilities in [0, 1]. The sequence of decisions is deterministic given
// Seed (though which request gets which decision depends on arrival order).
type RandomFaults struct {
	// Seed seeds the generator.
	Seed int64
	// ServerError is the share of /v2 requests answered 500, 502 or 503 in
	// equal parts; the 502s (a third) carry an HTML gateway page.
	ServerError float64
	// Timeout is the share of /v2 requests delayed by TimeoutDelay before
	// being handled.
	Timeout float64
	// TimeoutDelay is the delay for Timeout; zero means
	// DefaultSimTimeoutDelay.
	TimeoutDelay time.Duration
	// DropAfterCreate is the share of POST /v2/users requests that create
	// the user and then drop the connection.
	DropAfterCreate float64
	// LostAnswer is the share of state-changing requests (POST /v2/users,
	// PATCH, PUT status, DELETE) that are performed and then have their
	// connection dropped. For POST /v2/users it adds to DropAfterCreate.
	LostAnswer float64
	// TokenOutage is the share of token requests answered 503.
	TokenOutage float64
}

func (rf RandomFaults) enabled() bool {
	return rf.ServerError > 0 || rf.Timeout > 0 || rf.DropAfterCreate > 0 || rf.LostAnswer > 0 || rf.TokenOutage > 0
}

// SimUser is a user stored in the simulated account.
type SimUser struct {
	ID, Email, FirstName, LastName, DisplayName string
	// Type is 1 Basic, 2 Licensed or 4 Unassigned; deactivation sets 1.
	Type int
	// Status is "pending" for users created with action=create (they have
	// not accepted the invitation), "inactive" after deactivation, and
	// "active" otherwise.
	Status    string
	CreatedAt time.Time
	// Action is the create action used, or "" for users added with AddUser.
	Action string
	// ZoomPhone reports whether the user consumed a Zoom Phone licence.
	ZoomPhone bool
	// Admin marks an account admin (SetAdmin): Zoom neither disassociates
	// (1117) nor changes the status (code 200) of one.
	Admin bool

	// The profile and licence fields PATCH /v2/users/{userId} sets.
	Dept, JobTitle, Company, Location, CostCenter, Manager string
	Timezone, Language, Pronouns                           string
	// PlanUnitedType is "" when the user has no Zoom United plan.
	PlanUnitedType string
	// ZoomOneType is 0 when the user has no Zoom Workplace plan.
	ZoomOneType      int64
	CustomAttributes []SimCustomAttribute
	// LastPatch is the body of the last PATCH applied to the user.
	LastPatch []byte
}

// SimStats is a snapshot of the simulator's counters.
type SimStats struct {
	// Requests counts answered requests by route template and status.
	// Status 0 means no HTTP response was written (dropped connection, client
	// gone, simulator closed).
	Requests map[string]map[int]int
	// RateLimited counts 429s from the simulated limits by X-RateLimit-Type
	// (RateLimitQPS, RateLimitDaily); scripted 429 faults are not included.
	RateLimited map[string]int
	// TokensIssued counts successful token requests.
	TokensIssued int
	// Faults counts injected faults (scripted and random) by kind.
	Faults map[FaultKind]int
	// MaxConcurrent is the largest number of /v2 requests in flight at once.
	MaxConcurrent int
	// MaxPerSecond is the most authenticated Light /v2 requests (every
	// route but RouteListUsers) admitted in one second, counted in the
	// fixed one-second windows of the sim clock that RatePerSecond limits,
	// as Zoom counts.
	MaxPerSecond int
	// MaxMediumPerSecond is the same for the Medium requests
	// (RouteListUsers), which MediumRatePerSecond limits.
	MaxMediumPerSecond int
	// InFlight is the number of /v2 requests in flight now, including
	// stalled ones.
	InFlight int
	// Creations is the number of users created through the API.
	Creations int
	// Overlaps counts the 429s answered because another state-changing
	// call for the same user was still being served. A consumer that keeps
	// each user's requests in order never causes one.
	Overlaps int
}

// RecordedRequest is one entry of the request log.
type RecordedRequest struct {
	// Time is the sim-clock time of arrival.
	Time time.Time
	// Method and Path (escaped, without query) are as received; Query is the
	// raw query string.
	Method, Path, Query string
	// Route is the route template, e.g. RouteCreateUser.
	Route string
	// Status is the HTTP status answered, or 0 if no response was written.
	Status int
	// Authorization is the Authorization header as received.
	Authorization string
	// ContentType is the Content-Type header as received.
	ContentType string
	// Body is the request body.
	Body []byte
	// TrackingID is the x-zm-trackingid answered (empty for the token
	// endpoint).
	TrackingID string
	// Fault is the injected fault, if any.
	Fault FaultKind

	held string // the user lock this request holds, released by record
}

// scriptedFault is a queued fault; left <= 0 means it never runs out.
type scriptedFault struct {
	fault Fault
	left  int
}

type simToken struct {
	expires time.Time
	expired bool // set by ExpireTokens
}

// Simulator is a fake of Zoom's Server-to-Server OAuth token endpoint and of
// the Users API endpoints the consumer uses, served by an httptest.Server.
// All methods are safe for concurrent use.
type Simulator struct {
	srv *httptest.Server

	// Immutable after NewSimulator.
	accountID, clientID, clientSecret string
	tokenTTL, dailyWindow             time.Duration
	expiresIn                         ExpiresIn
	maxRecorded                       int
	now                               func() time.Time
	closed                            chan struct{}
	closeOnce                         sync.Once

	mu          sync.Mutex
	rate        int
	mediumRate  int
	maxPage     int
	dailyLimit  int
	omitHeaders bool
	latency     time.Duration
	phone       int
	rejectCreds bool
	stall       chan struct{} // non-nil while stalled; closed by Unstall

	tokens map[string]*simToken

	secWindow time.Time
	secCount  int
	medWindow time.Time
	medCount  int
	dayWindow time.Time
	dayCount  int

	users     map[string]*SimUser // by lower-cased email
	usersByID map[string]*SimUser
	creations map[string]int // by lower-cased email

	emailFaults map[string][]scriptedFault // by lower-cased email
	nextFaults  []scriptedFault
	tokenFaults []scriptedFault
	random      RandomFaults
	rng         *rand.Rand

	inFlight int
	stats    SimStats
	log      []RecordedRequest
	first    map[string]time.Time // route -> earliest arrival answered

	managed   map[string]bool   // lower-cased managed domains
	statusNo  bool              // StatusNoContent
	busy      map[string]string // user key -> verb of the call being served
	seq       int64             // last SimCall.Seq
	history   map[string][]SimCall
	deletions map[string][]SimDeletion

	pageTokens map[string]*pageToken // GET /v2/users next_page_tokens
}

// NewSimulator starts a simulator listening on 127.0.0.1. Call Close when
// done with it.
func NewSimulator(cfg SimConfig) *Simulator {
	s := &Simulator{
		accountID:    orDefault(cfg.AccountID, DefaultSimAccountID),
		clientID:     orDefault(cfg.ClientID, DefaultSimClientID),
		clientSecret: orDefault(cfg.ClientSecret, DefaultSimClientSecret),
		tokenTTL:     cfg.TokenTTL,
		expiresIn:    cfg.TokenExpiresIn,
		dailyWindow:  cfg.DailyWindow,
		maxRecorded:  cfg.MaxRecordedRequests,
		now:          cfg.Now,
		closed:       make(chan struct{}),
		rate:         cfg.RatePerSecond,
		mediumRate:   cfg.MediumRatePerSecond,
		maxPage:      cfg.MaxPageSize,
		dailyLimit:   cfg.DailyCreateLimit,
		omitHeaders:  cfg.OmitRateLimitHeaders,
		latency:      cfg.Latency,
		phone:        cfg.PhoneLicenses,
		tokens:       make(map[string]*simToken),
		users:        make(map[string]*SimUser, cfg.Users),
		usersByID:    make(map[string]*SimUser, cfg.Users),
		creations:    make(map[string]int, cfg.Users),
		emailFaults:  make(map[string][]scriptedFault),
		managed:      make(map[string]bool),
		statusNo:     cfg.StatusNoContent,
		busy:         make(map[string]string),
		history:      make(map[string][]SimCall, cfg.Users),
		deletions:    make(map[string][]SimDeletion),
		pageTokens:   make(map[string]*pageToken),
		first:        make(map[string]time.Time),
		stats: SimStats{
			Requests:    make(map[string]map[int]int),
			RateLimited: make(map[string]int),
			Faults:      make(map[FaultKind]int),
		},
	}
	if s.tokenTTL <= 0 {
		s.tokenTTL = DefaultSimTokenTTL
	}
	if s.dailyWindow <= 0 {
		s.dailyWindow = DefaultSimDailyWindow
	}
	if s.maxRecorded == 0 {
		s.maxRecorded = DefaultSimMaxRecordedRequests
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.maxPage <= 0 {
		s.maxPage = DefaultSimMaxPageSize
	}
	for _, d := range cfg.ManagedDomains {
		s.managed[strings.ToLower(d)] = true
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// URL returns the server root, e.g. "http://127.0.0.1:40000".
func (s *Simulator) URL() string { return s.srv.URL }

// APIURL returns the base URL of the REST API, URL()+"/v2".
func (s *Simulator) APIURL() string { return s.srv.URL + "/v2" }

// TokenURL returns the OAuth token endpoint, URL()+"/oauth/token".
func (s *Simulator) TokenURL() string { return s.srv.URL + "/oauth/token" }

// Close releases stalled and delayed requests (their connections are
// dropped) and shuts the server down, waiting for outstanding requests.
// It is safe to call more than once.
func (s *Simulator) Close() {
	s.closeOnce.Do(func() {
		// Handlers must be released first: httptest.Server.Close waits for
		// every outstanding request.
		close(s.closed)
		s.srv.Close()
	})
}

// SetRatePerSecond changes the Light per-second limit; 0 means unlimited.
func (s *Simulator) SetRatePerSecond(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rate = n
}

// SetMediumRatePerSecond changes the Medium per-second limit (GET
// /v2/users); 0 means unlimited.
func (s *Simulator) SetMediumRatePerSecond(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mediumRate = n
}

// SetMaxPageSize changes the largest page_size GET /v2/users serves; 0
// means DefaultSimMaxPageSize. Listings already started keep the page size
// they were started with.
func (s *Simulator) SetMaxPageSize(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		n = DefaultSimMaxPageSize
	}
	s.maxPage = n
}

// SetDailyCreateLimit changes the daily action=create quota; 0 means
// unlimited. Requests already admitted in the current window still count.
func (s *Simulator) SetDailyCreateLimit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dailyLimit = n
}

// SetLatency changes the delay added before answering admitted /v2
// requests.
func (s *Simulator) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// SetOmitRateLimitHeaders changes whether 429s carry X-RateLimit-Type and
// Retry-After.
func (s *Simulator) SetOmitRateLimitHeaders(omit bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.omitHeaders = omit
}

// SetPhoneLicenses changes the number of Zoom Phone licences left; -1 means
// unlimited.
func (s *Simulator) SetPhoneLicenses(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.phone = n
}

// RejectCredentials makes the token endpoint answer 400 invalid_client while
// reject is true, as Zoom does when the app is deactivated or its secret
// rotated. Turning it on also invalidates every token issued so far (401,
// code 124); turning it off lets new tokens be issued but does not revive
// old ones.
func (s *Simulator) RejectCredentials(reject bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejectCreds = reject
	if reject {
		clear(s.tokens)
	}
}

// ExpireTokens makes every token issued so far answer 401 "Access token is
// expired." Tokens issued later are unaffected.
func (s *Simulator) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.tokens {
		t.expired = true
	}
}

// Stall makes /v2 requests block until Unstall, until their client gives up,
// or until Close, as when Zoom stops answering. Token requests are not
// affected. A released request is authenticated and rate limited at release
// time; one whose client gave up is dropped without being handled.
func (s *Simulator) Stall() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stall == nil {
		s.stall = make(chan struct{})
	}
}

// Unstall releases the requests blocked by Stall and lets new ones through.
func (s *Simulator) Unstall() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stall != nil {
		close(s.stall)
		s.stall = nil
	}
}

// AddUser stores a pre-existing active user, as if created outside the
// consumer, and returns its id. It does not count as a creation. If a user
// with that email (case-insensitively) exists, its id is returned and
// nothing changes.
func (s *Simulator) AddUser(email string, userType int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.users[strings.ToLower(email)]; ok {
		return u.ID
	}
	u := &SimUser{
		ID:        newUserID(),
		Email:     email,
		Type:      userType,
		Status:    "active",
		CreatedAt: s.now(),
	}
	s.storeLocked(u)
	return u.ID
}

func (s *Simulator) storeLocked(u *SimUser) {
	s.users[strings.ToLower(u.Email)] = u
	s.usersByID[u.ID] = u
}

// FailEmail scripts the answers to requests concerning email (compared
// case-insensitively): the user_info.email of POST /v2/users, the path of
// GET /v2/users/{email}, the user named by id or email in the path of
// PATCH, PUT status and DELETE, or the query of GET /v2/users/email. The
// fault is used times times, or every time if times <= 0. Several calls
// queue up and are consumed in order; a fault with times <= 0 shadows those
// queued after it. FailNext faults take precedence.
func (s *Simulator) FailEmail(email string, times int, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := strings.ToLower(email)
	s.emailFaults[k] = append(s.emailFaults[k], scriptedFault{fault: copyFault(f), left: times})
}

// FailNext scripts the answer to the next n /v2 requests of any kind that
// pass authentication and the rate limits; n <= 0 means every such request
// until ClearFaults. Several calls queue up. FailNext faults take precedence
// over FailEmail and random faults.
func (s *Simulator) FailNext(n int, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextFaults = append(s.nextFaults, scriptedFault{fault: copyFault(f), left: n})
}

// FailNextToken scripts the answer to the next n token requests, like
// FailNext does for /v2 requests. AfterCreate issues a token nobody
// receives.
func (s *Simulator) FailNextToken(n int, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenFaults = append(s.tokenFaults, scriptedFault{fault: copyFault(f), left: n})
}

// SetRandomFaults replaces the random fault configuration and reseeds the
// generator. The zero RandomFaults turns random faults off.
func (s *Simulator) SetRandomFaults(r RandomFaults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.TimeoutDelay <= 0 {
		r.TimeoutDelay = DefaultSimTimeoutDelay
	}
	s.random = r
	seed := uint64(r.Seed)
	s.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// ClearFaults removes all scripted (FailEmail, FailNext, FailNextToken) and
// random faults.
func (s *Simulator) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.emailFaults)
	s.nextFaults = nil
	s.tokenFaults = nil
	s.random = RandomFaults{}
	s.rng = nil
}

func copyFault(f Fault) Fault {
	if f.Headers != nil {
		h := make(map[string]string, len(f.Headers))
		for k, v := range f.Headers {
			h[k] = v
		}
		f.Headers = h
	}
	return f
}

// popFault takes the head of q, consuming one use of it.
func popFault(q []scriptedFault) (Fault, []scriptedFault, bool) {
	if len(q) == 0 {
		return Fault{}, q, false
	}
	f := q[0].fault
	if q[0].left > 0 {
		q[0].left--
		if q[0].left == 0 {
			q = q[1:]
		}
	}
	return f, q, true
}

// Creations reports how many times a user with email (case-insensitively)
// was created through the API, including creations whose response was lost.
// Deleting the user does not lower it. A correct consumer never makes it
// exceed the number of creation requests for that email that follow a
// deletion, plus one.
func (s *Simulator) Creations(email string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.creations[strings.ToLower(email)]
}

// TotalCreations reports how many users were created through the API.
func (s *Simulator) TotalCreations() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats.Creations
}

// User returns the stored user with email (case-insensitively).
func (s *Simulator) User(email string) (SimUser, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[strings.ToLower(email)]
	if !ok {
		return SimUser{}, false
	}
	return u.clone(), true
}

// Stats returns a snapshot of the counters.
func (s *Simulator) Stats() SimStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.InFlight = s.inFlight
	st.Requests = make(map[string]map[int]int, len(s.stats.Requests))
	for route, m := range s.stats.Requests {
		c := make(map[int]int, len(m))
		for k, v := range m {
			c[k] = v
		}
		st.Requests[route] = c
	}
	st.RateLimited = make(map[string]int, len(s.stats.RateLimited))
	for k, v := range s.stats.RateLimited {
		st.RateLimited[k] = v
	}
	st.Faults = make(map[FaultKind]int, len(s.stats.Faults))
	for k, v := range s.stats.Faults {
		st.Faults[k] = v
	}
	return st
}

// Requests returns a copy of the log of answered /v2 and token requests, in
// the order they were answered (RecordedRequest.Time is the arrival time).
// Requests still in flight are not included.
func (s *Simulator) Requests() []RecordedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]RecordedRequest, len(s.log))
	copy(out, s.log)
	return out
}

// FirstArrival returns the sim-clock arrival time of the earliest request
// on route (a route template such as RouteCreateUser) among those
// SimStats.Requests counts (finished: answered with any status, or ended
// without an answer), and false if there is none yet. Unlike Requests it
// does not depend on MaxRecordedRequests: a run of a million requests
// with a small log still knows when its first call came.
func (s *Simulator) FirstArrival(route string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.first[route]
	return t, ok
}

// record logs rec with status and counts it, and releases the user lock
// rec holds. It runs before the response is written so that a client that
// has its answer always finds it in the log, and never finds the user still
// busy.
func (s *Simulator) record(rec *RecordedRequest, status int) {
	rec.Status = status
	s.mu.Lock()
	defer s.mu.Unlock()
	if rec.held != "" {
		delete(s.busy, rec.held)
		rec.held = ""
	}
	m := s.stats.Requests[rec.Route]
	if m == nil {
		m = make(map[int]int)
		s.stats.Requests[rec.Route] = m
	}
	m[status]++
	// Requests are recorded when answered, not in order of arrival.
	if t, ok := s.first[rec.Route]; !ok || rec.Time.Before(t) {
		s.first[rec.Route] = rec.Time
	}
	if s.maxRecorded > 0 && len(s.log) >= s.maxRecorded {
		s.log = append(s.log[1:], *rec)
		return
	}
	s.log = append(s.log, *rec)
}

// newUserID returns a random 22-character id shaped like Zoom's
// (base64url of 16 bytes, e.g. "KDcuGIm1QgePTO8WbOqwIQ").
func newUserID() string {
	var b [16]byte
	_, _ = crand.Read(b[:]) // crypto/rand.Read never fails since Go 1.24.
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func newAccessToken() string {
	var b [32]byte
	_, _ = crand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
