package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxBodyBytes bounds request bodies; Zoom's create-user bodies are tiny.
const maxBodyBytes = 1 << 20

// reply is an answer computed by a handler or fault, written by writeReply.
type reply struct {
	status      int
	header      http.Header
	contentType string
	body        []byte
	// gateway marks answers that look like they came from a proxy in front
	// of Zoom (HTML or empty bodies); they carry no rate-limit headers.
	gateway bool
}

// zoomError is Zoom's error envelope.
type zoomError struct {
	Code    int          `json:"code"`
	Message string       `json:"message"`
	Errors  []fieldError `json:"errors,omitempty"`
}

type fieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func jsonReply(status int, v any) reply {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own plain types are marshalled; this cannot happen.
		panic("testenv: marshal reply: " + err.Error())
	}
	return reply{status: status, contentType: "application/json;charset=UTF-8", body: b}
}

func errorReply(status, code int, msg string) reply {
	return jsonReply(status, zoomError{Code: code, Message: msg})
}

func (s *Simulator) serve(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; {
	case p == "/oauth/token":
		s.serveToken(w, r)
	case p == "/v2" || strings.HasPrefix(p, "/v2/"):
		s.serveAPI(w, r)
	default:
		http.NotFound(w, r)
	}
}

func newRecord(r *http.Request, now time.Time, route string, body []byte) RecordedRequest {
	return RecordedRequest{
		Time:          now,
		Method:        r.Method,
		Path:          r.URL.EscapedPath(),
		Query:         r.URL.RawQuery,
		Route:         route,
		Authorization: r.Header.Get("Authorization"),
		ContentType:   r.Header.Get("Content-Type"),
		Body:          body,
	}
}

// readBody reads the whole body; a truncated body is handled like any other
// malformed one by the handlers.
func readBody(w http.ResponseWriter, r *http.Request) []byte {
	b, _ := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if len(b) == 0 {
		return nil
	}
	return b
}

// apiRoute is a matched /v2 route.
type apiRoute struct {
	template string
	userID   string // unescaped {userId} path segment
}

func matchAPIRoute(r *http.Request) apiRoute {
	p := r.URL.EscapedPath()
	switch {
	case r.Method == http.MethodPost && p == "/v2/users":
		return apiRoute{template: RouteCreateUser}
	case r.Method == http.MethodGet && p == "/v2/users":
		return apiRoute{template: RouteListUsers}
	// The literal route must win over {userId}, as in Zoom's router.
	case r.Method == http.MethodGet && p == "/v2/users/email":
		return apiRoute{template: RouteUserEmail}
	case strings.HasPrefix(p, "/v2/users/"):
		seg := strings.TrimPrefix(p, "/v2/users/")
		template := map[string]string{
			http.MethodGet: RouteGetUser, http.MethodPatch: RoutePatchUser, http.MethodDelete: RouteDeleteUser,
		}[r.Method]
		if rest, ok := strings.CutSuffix(seg, "/status"); ok && r.Method == http.MethodPut {
			seg, template = rest, RouteUserStatus
		}
		if template != "" && seg != "" && !strings.Contains(seg, "/") {
			if id, err := url.PathUnescape(seg); err == nil {
				return apiRoute{template: template, userID: id}
			}
		}
	}
	return apiRoute{template: r.Method + " " + p}
}

// admission is the outcome of the checks that run under the lock before a
// /v2 request is handled.
type admission struct {
	reject  *reply // answer now (401, 429)
	fault   *Fault
	latency time.Duration
	rl      rateInfo
	held    string // the user lock taken for a state-changing call
}

// rateInfo is what the rate-limit headers of a normal answer say.
type rateInfo struct {
	// category is the route's rate-limit label, "Light" or "Medium".
	category string
	// limit is X-RateLimit-Limit; 0 omits the headers.
	limit, remaining int
}

// Zoom's rate-limit labels, the values of X-RateLimit-Category.
const (
	labelLight  = "Light"
	labelMedium = "Medium"
)

// labelOf is route's rate-limit label: GET /v2/users is Medium, every
// other simulated route Light (reference §2.2 and §9).
func labelOf(route string) string {
	if route == RouteListUsers {
		return labelMedium
	}
	return labelLight
}

func (s *Simulator) serveAPI(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	body := readBody(w, r)
	rt := matchAPIRoute(r)
	rec := newRecord(r, now, rt.template, body)
	rec.TrackingID = fmt.Sprintf("v=2.0;clid=sim;rid=WEB_%016x", rand.Uint64())
	w.Header().Set("x-zm-trackingid", rec.TrackingID)

	var create createRequest
	var email string
	switch rt.template {
	case RouteCreateUser:
		create = parseCreate(body)
		email = create.body.UserInfo.Email
	case RouteGetUser, RoutePatchUser, RouteUserStatus, RouteDeleteUser:
		email = rt.userID
	case RouteUserEmail:
		email = r.URL.Query().Get("email")
	}
	call := &simCall{SimCall: SimCall{
		Method: r.Method, Route: rt.template, Path: rec.Path, Query: rec.Query, Body: body,
	}}

	s.enter()
	defer s.leave()

	ctx := r.Context()
	if !s.waitStall(ctx) {
		s.abandon(w, &rec)
		return
	}
	// The clock is read again: a stalled request is judged when released.
	now = s.now()
	adm := s.admit(r, now, rt, create.body.Action, email, verbOf(r, rt, body))
	if adm.reject != nil {
		s.writeReply(w, &rec, *adm.reject, rateInfo{})
		return
	}
	rec.held = adm.held
	handle := func() reply { return s.handleAPI(r, rt, create, call) }
	if adm.fault != nil {
		rec.Fault = adm.fault.Kind()
		call.Fault = rec.Fault
	}
	s.respond(w, r, &rec, adm.fault, adm.latency, adm.rl, handle, func() { s.answerLost(call) })
}

// respond waits latency, applies f (if any) and otherwise answers with
// handle's reply. lost, if not nil, runs when handle performed the request
// but its reply will not be the answer.
func (s *Simulator) respond(w http.ResponseWriter, r *http.Request, rec *RecordedRequest, f *Fault, latency time.Duration, rl rateInfo, handle func() reply, lost func()) {
	ctx := r.Context()
	if !s.pause(ctx, latency) {
		s.abandon(w, rec)
		return
	}
	if f == nil {
		s.writeReply(w, rec, handle(), rl)
		return
	}
	var done *reply
	if f.AfterCreate {
		rep := handle()
		done = &rep
	}
	lose := func() {
		if done != nil && lost != nil {
			lost()
		}
	}
	if !s.pause(ctx, f.Delay) {
		lose()
		s.abandon(w, rec)
		return
	}
	if f.Drop {
		lose()
		s.record(rec, 0)
		dropConn(w)
		return
	}
	if rep, ok := faultReply(*f); ok {
		lose()
		s.writeReply(w, rec, rep, rl)
		return
	}
	// A delay-only fault answers normally.
	if done == nil {
		rep := handle()
		done = &rep
	}
	s.writeReply(w, rec, *done, rl)
}

func (s *Simulator) enter() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight++
	s.stats.MaxConcurrent = max(s.stats.MaxConcurrent, s.inFlight)
}

func (s *Simulator) leave() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight--
}

// waitStall blocks while the simulator is stalled. It reports false if the
// client went away or the simulator was closed meanwhile.
func (s *Simulator) waitStall(ctx context.Context) bool {
	s.mu.Lock()
	ch := s.stall
	s.mu.Unlock()
	if ch == nil {
		return true
	}
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	case <-s.closed:
		return false
	}
}

// pause waits d of real time. It reports false if the client went away or
// the simulator was closed meanwhile.
func (s *Simulator) pause(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.closed:
		return false
	}
}

// abandon ends a request that will get no answer. The connection is dropped
// rather than left to net/http, which would send an empty 200.
func (s *Simulator) abandon(w http.ResponseWriter, rec *RecordedRequest) {
	s.record(rec, 0)
	dropConn(w)
}

// dropConn closes the connection without writing a response.
func dropConn(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	// Without a hijackable connection (HTTP/2), aborting the handler is the
	// only way to avoid sending a response.
	panic(http.ErrAbortHandler)
}

func (s *Simulator) writeReply(w http.ResponseWriter, rec *RecordedRequest, rep reply, rl rateInfo) {
	h := w.Header()
	if rl.limit > 0 && !rep.gateway {
		h.Set("X-RateLimit-Category", rl.category)
		h.Set("X-RateLimit-Limit", strconv.Itoa(rl.limit))
		h.Set("X-RateLimit-Remaining", strconv.Itoa(rl.remaining))
	}
	for k, v := range rep.header {
		h[k] = v
	}
	if rep.contentType != "" {
		h.Set("Content-Type", rep.contentType)
	}
	h.Set("Content-Length", strconv.Itoa(len(rep.body)))
	s.record(rec, rep.status)
	w.WriteHeader(rep.status)
	_, _ = w.Write(rep.body) // The client may be gone; nothing to do then.
}

// admit runs, under the lock, the checks Zoom makes before handling a
// request: authentication, the per-second limit of the route's label, the
// user lock of a state-changing call, the daily create quota, then the
// choice of an injected fault. verb names a state-changing call in the 429 that a later
// call for the same user gets while it is served.
func (s *Simulator) admit(r *http.Request, now time.Time, rt apiRoute, action, email, verb string) admission {
	s.mu.Lock()
	defer s.mu.Unlock()
	route := rt.template
	if stateChanging(route) && rt.userID != "" {
		// Faults and locks follow the user, whether the path names them by
		// id or by email.
		email = s.userKeyLocked(rt.userID)
	}

	if rep, ok := s.authLocked(r, now); !ok {
		return admission{reject: &rep}
	}

	// Each label has its own quota and its own windows (reference §2.1).
	label := labelOf(route)
	rate, window, count, busiest := s.rate, &s.secWindow, &s.secCount, &s.stats.MaxPerSecond
	if label == labelMedium {
		rate, window, count, busiest = s.mediumRate, &s.medWindow, &s.medCount, &s.stats.MaxMediumPerSecond
	}
	win := now.Truncate(time.Second)
	if !win.Equal(*window) {
		*window, *count = win, 0
	}
	if rate > 0 && *count >= rate {
		s.stats.RateLimited[RateLimitQPS]++
		rep := s.rateLimitedLocked(label, RateLimitQPS, rate, win.Add(time.Second),
			"You have reached the maximum per-second rate limit for this API. Try again later.")
		return admission{reject: &rep}
	}
	*count++
	*busiest = max(*busiest, *count)
	adm := admission{latency: s.latency, rl: rateInfo{category: label}}
	if rate > 0 {
		adm.rl.limit, adm.rl.remaining = rate, rate-*count
	}

	// A call naming no user (a create without an email) locks nothing.
	if key := strings.ToLower(email); stateChanging(route) && key != "" {
		if held, busy := s.busy[key]; busy {
			s.stats.Overlaps++
			rep := errorReply(http.StatusTooManyRequests, http.StatusTooManyRequests,
				"Too many concurrent requests. A request to "+held+" this user has already been made.")
			return admission{reject: &rep}
		}
		s.busy[key] = verb
		adm.held = key
	}

	counted := false
	if route == RouteCreateUser && action == "create" {
		dw := now.Truncate(s.dailyWindow)
		if !dw.Equal(s.dayWindow) {
			s.dayWindow, s.dayCount = dw, 0
		}
		if s.dailyLimit > 0 && s.dayCount >= s.dailyLimit {
			delete(s.busy, adm.held)
			s.stats.RateLimited[RateLimitDaily]++
			next := dw.Add(s.dailyWindow)
			rep := s.rateLimitedLocked(labelLight, RateLimitDaily, s.dailyLimit, next, fmt.Sprintf(
				"You have exceeded the daily rate limit (%d) of user invite requests permitted for this account. You may resume these requests at GMT %s.",
				s.dailyLimit, ceilSecond(next).UTC().Format("15:04:05")))
			return admission{reject: &rep}
		}
		s.dayCount++
		counted = true
	}

	if f, ok := s.pickFaultLocked(route, email); ok {
		s.stats.Faults[f.Kind()]++
		adm.fault = &f
		// A scripted 429 is a rate-limit answer too, and those never use
		// up quota.
		if counted && f.Status == http.StatusTooManyRequests && !f.Drop && !f.AfterCreate {
			s.dayCount--
		}
	}
	return adm
}

// authLocked checks the Bearer token.
func (s *Simulator) authLocked(r *http.Request, now time.Time) (reply, bool) {
	invalid := errorReply(http.StatusUnauthorized, 124, "Invalid access token.")
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return invalid, false
	}
	t, ok := s.tokens[strings.TrimSpace(tok)]
	if !ok {
		return invalid, false
	}
	if t.expired || !now.Before(t.expires) {
		return errorReply(http.StatusUnauthorized, 124, "Access token is expired."), false
	}
	return reply{}, true
}

func (s *Simulator) rateLimitedLocked(label, typ string, limit int, retryAt time.Time, msg string) reply {
	rep := errorReply(http.StatusTooManyRequests, http.StatusTooManyRequests, msg)
	rep.header = http.Header{}
	rep.header.Set("X-RateLimit-Category", label)
	rep.header.Set("X-RateLimit-Limit", strconv.Itoa(limit))
	rep.header.Set("X-RateLimit-Remaining", "0")
	if !s.omitHeaders {
		rep.header.Set("X-RateLimit-Type", typ)
		// Zoom sends an RFC 3339 UTC time here, not delta-seconds. Round
		// up so that a client waiting until then is never early.
		rep.header.Set("Retry-After", ceilSecond(retryAt).UTC().Format(time.RFC3339))
	}
	return rep
}

func ceilSecond(t time.Time) time.Time {
	if tr := t.Truncate(time.Second); !tr.Equal(t) {
		return tr.Add(time.Second)
	}
	return t
}

// pickFaultLocked chooses the fault for a /v2 request: FailNext first, then
// FailEmail, then random faults.
func (s *Simulator) pickFaultLocked(route, email string) (Fault, bool) {
	if f, q, ok := popFault(s.nextFaults); ok {
		s.nextFaults = q
		return f, true
	}
	if email != "" {
		k := strings.ToLower(email)
		if f, q, ok := popFault(s.emailFaults[k]); ok {
			if len(q) == 0 {
				delete(s.emailFaults, k)
			} else {
				s.emailFaults[k] = q
			}
			return f, true
		}
	}
	if s.rng == nil || !s.random.enabled() {
		return Fault{}, false
	}
	// Always draw twice so that the sequence of decisions depends only on
	// the seed and the number of requests, not on their kinds.
	u, v := s.rng.Float64(), s.rng.Float64()
	rf := s.random
	switch {
	case u < rf.ServerError:
		switch int(v * 3) {
		case 0:
			return Fault{Status: http.StatusInternalServerError}, true
		case 1:
			return Fault{Status: http.StatusBadGateway, HTML: true}, true
		default:
			return Fault{Status: http.StatusServiceUnavailable}, true
		}
	case u < rf.ServerError+rf.Timeout:
		return Fault{Delay: rf.TimeoutDelay}, true
	case stateChanging(route) && u < rf.ServerError+rf.Timeout+rf.LostAnswer+createShare(route, rf.DropAfterCreate):
		return Fault{Drop: true, AfterCreate: true}, true
	}
	return Fault{}, false
}

// faultReply builds the answer of a fault that answers with a status. It
// reports false for delay-only faults.
func faultReply(f Fault) (reply, bool) {
	status := f.Status
	var rep reply
	switch {
	case f.HTML:
		if status == 0 {
			status = http.StatusBadGateway
		}
		title := fmt.Sprintf("%d %s", status, http.StatusText(status))
		rep = reply{
			status:      status,
			contentType: "text/html",
			body: []byte("<html><head><title>" + title + "</title></head><body>" +
				"<center><h1>" + title + "</h1></center><hr><center>cloudflare</center>" +
				"</body></html>\n"),
			gateway: true,
		}
	case f.EmptyBody:
		if status == 0 {
			status = http.StatusBadGateway
		}
		rep = reply{status: status, gateway: true}
	case status != 0:
		code, msg := f.Code, f.Message
		if code == 0 {
			code = status
		}
		if msg == "" {
			msg = http.StatusText(status)
		}
		rep = errorReply(status, code, msg)
	default:
		return reply{}, false
	}
	if len(f.Headers) > 0 {
		rep.header = http.Header{}
		for k, v := range f.Headers {
			rep.header.Set(k, v)
		}
	}
	return rep, true
}

// serveToken is the Server-to-Server OAuth token endpoint.
func (s *Simulator) serveToken(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	body := readBody(w, r)
	rec := newRecord(r, now, r.Method+" /oauth/token", body)

	s.mu.Lock()
	f, kind, ok := s.pickTokenFaultLocked()
	if ok {
		s.stats.Faults[kind]++
		rec.Fault = kind
	}
	s.mu.Unlock()

	handle := func() reply { return s.tokenReply(r, body) }
	if !ok {
		s.writeReply(w, &rec, handle(), rateInfo{})
		return
	}
	s.respond(w, r, &rec, &f, 0, rateInfo{}, handle, nil)
}

// pickTokenFaultLocked chooses the fault for a token request: FailNextToken
// first, then a random outage.
func (s *Simulator) pickTokenFaultLocked() (Fault, FaultKind, bool) {
	if f, q, ok := popFault(s.tokenFaults); ok {
		s.tokenFaults = q
		return f, f.Kind(), true
	}
	if s.rng == nil || s.random.TokenOutage <= 0 {
		return Fault{}, FaultNone, false
	}
	if s.rng.Float64() < s.random.TokenOutage {
		return Fault{Status: http.StatusServiceUnavailable, HTML: true}, FaultTokenOutage, true
	}
	return Fault{}, FaultNone, false
}

func tokenError(errCode, reason string) reply {
	return jsonReply(http.StatusBadRequest, struct {
		Reason string `json:"reason"`
		Error  string `json:"error"`
	}{reason, errCode})
}

// tokenReply validates a token request and issues a token.
func (s *Simulator) tokenReply(r *http.Request, body []byte) reply {
	if r.Method != http.MethodPost {
		rep := jsonReply(http.StatusMethodNotAllowed, struct {
			Reason string `json:"reason"`
			Error  string `json:"error"`
		}{"Method Not Allowed", "invalid_request"})
		rep.header = http.Header{"Allow": {http.MethodPost}}
		return rep
	}
	// Zoom accepts the parameters in the query or in a form body; body
	// values win.
	params := r.URL.Query()
	if len(body) > 0 {
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if mt != "application/x-www-form-urlencoded" {
			return tokenError("invalid_request", "Unsupported Content-Type, expected application/x-www-form-urlencoded")
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return tokenError("invalid_request", "Malformed request body")
		}
		for k, v := range form {
			params[k] = v
		}
	}

	id, secret, ok := r.BasicAuth()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !ok || s.rejectCreds || id != s.clientID || secret != s.clientSecret {
		return tokenError("invalid_client", "Invalid client_id or client_secret")
	}
	switch g := params.Get("grant_type"); {
	case g == "":
		return tokenError("invalid_request", "Missing grant type")
	case g != "account_credentials":
		return tokenError("unsupported_grant_type", "Unsupported grant type")
	}
	switch a := params.Get("account_id"); {
	case a == "":
		return tokenError("invalid_request", "Missing account_id")
	case a != s.accountID:
		return tokenError("invalid_request", "Invalid account_id")
	}

	tok := newAccessToken()
	s.tokens[tok] = &simToken{expires: s.now().Add(s.tokenTTL)}
	s.stats.TokensIssued++
	var expiresIn *int64 // nil: the field is left out
	switch s.expiresIn {
	case ExpiresInTTL:
		n := int64(s.tokenTTL / time.Second)
		expiresIn = &n
	case ExpiresInZero:
		expiresIn = new(int64)
	}
	return jsonReply(http.StatusOK, struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   *int64 `json:"expires_in,omitempty"`
		Scope       string `json:"scope"`
		APIURL      string `json:"api_url"`
	}{tok, "bearer", expiresIn, "user:read:admin user:write:admin", s.srv.URL})
}
