package metrics

import (
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ZoomTransport wraps base (nil means http.DefaultTransport) so that every
// call the Zoom client makes through it is counted by endpoint and status
// class and timed. It is how Zoom calls are measured without the zoom
// package knowing about Prometheus: pass it as the Transport of
// zoom.Config.HTTPClient. tokenURL is the OAuth token endpoint, which the
// client reaches through the same transport. On a nil *Metrics it returns
// base unchanged.
func (m *Metrics) ZoomTransport(base http.RoundTripper, tokenURL string) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	if m == nil {
		return base
	}
	t := &zoomTransport{base: base, m: m}
	if u, err := url.Parse(tokenURL); err == nil {
		t.tokenHost, t.tokenPath = u.Host, strings.TrimRight(u.Path, "/")
	}
	return t
}

type zoomTransport struct {
	base                 http.RoundTripper
	m                    *Metrics
	tokenHost, tokenPath string
}

func (t *zoomTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ep := t.endpoint(req)
	start := time.Now()
	res, err := t.base.RoundTrip(req)
	status := 0
	if res != nil {
		status = res.StatusCode
	}
	t.m.zoomCall(ep, status, err, time.Since(start))
	return res, err
}

// CloseIdleConnections passes on to the wrapped transport, so that
// zoom.Client.CloseIdleConnections still releases pooled connections.
func (t *zoomTransport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// endpoint names the Zoom endpoint a request goes to, from its method and
// path only (the path of GET /users/{email} holds an address, which must
// never become a label).
func (t *zoomTransport) endpoint(req *http.Request) string {
	path := strings.TrimRight(req.URL.Path, "/")
	switch {
	case req.URL.Host == t.tokenHost && path == t.tokenPath:
		return EndpointToken
	case req.Method == http.MethodPost && strings.HasSuffix(path, "/users"):
		return EndpointCreateUser
	case req.Method == http.MethodGet && strings.HasSuffix(path, "/users"):
		// GET /users lists users (and counts them); GET /users/{userId}
		// and /users/email, below, look one up.
		return EndpointListUsers
	case req.Method == http.MethodGet && strings.Contains(path, "/users/"):
		return EndpointGetUser
	case req.Method == http.MethodPatch && strings.Contains(path, "/users/"):
		return EndpointUpdateUser
	case req.Method == http.MethodPut && strings.HasSuffix(path, "/status"):
		return EndpointUserStatus
	case req.Method == http.MethodDelete && strings.Contains(path, "/users/"):
		return EndpointDeleteUser
	}
	return Other
}
