package provision_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/deadletter"
	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/topology"
	"github.com/zoomprov/consumer/testenv"
)

// poisonPassword is in several poison requests: it must reach no header,
// event or log line (the dead letter's body is the original request and
// may hold it).
const poisonPassword = "Pz!poison-PASSWORD-41"

// poisonRequest is one malformed request of the catalogue.
type poisonRequest struct {
	name string
	// subject is the last token of the request subject (usually the
	// action; "bogus" for a subject that names none).
	subject string
	body    string
	// want is a word of the Zoom-Error-Message header that tells the
	// producer what to fix, usually the offending field's path.
	want string
}

// user builds a request body from a user_info object in JSON.
func user(action, userInfo string) string {
	return `{"action":"` + action + `","user_info":` + userInfo + `}`
}

// poisonCatalogue is every malformed request the service must dead-letter
// with reason invalid_request, before any Zoom call.
func poisonCatalogue() []poisonRequest {
	ok := `"email":"p@example.com","type":1`
	deep := strings.Repeat(`[`, 200) + strings.Repeat(`]`, 200)
	manyUnknown := make([]string, 2000)
	for i := range manyUnknown {
		manyUnknown[i] = fmt.Sprintf(`"x%d":%d`, i, i)
	}
	// Slightly less than the request stream's size limit (larger requests
	// are refused at publish time; see TestPoisonAtMaxPayload), far above
	// the 64 KiB body limit.
	big := user("create", `{`+ok+`,"first_name":"`+strings.Repeat("b", topology.MaxRequestBytes-2048)+`"}`)

	return []poisonRequest{
		// Not JSON, or not one JSON object.
		{name: "not JSON", subject: "create", body: `this is not json`, want: "not valid JSON"},
		{name: "truncated", subject: "create", body: `{"action":"create","user_info":{"email":"p@example.com","ty`, want: "truncated"},
		{name: "data after the object", subject: "create", body: user("create", `{`+ok+`}`) + `{"action":"create"}`, want: "data after the JSON object"},
		{name: "empty body", subject: "create", body: ``, want: "body is empty"},
		{name: "blank body", subject: "create", body: " \r\n\t", want: "body is empty"},
		{name: "JSON array", subject: "create", body: `[` + user("create", `{`+ok+`}`) + `]`, want: "must be a JSON object"},
		{name: "bare string", subject: "create", body: `"create p@example.com"`, want: "must be a JSON object"},
		{name: "null", subject: "create", body: `null`, want: "must be a JSON object"},
		{name: "raw NUL byte in a string", subject: "create", body: user("create", "{\"email\":\"p\x00@example.com\",\"type\":1}"), want: "not valid JSON"},
		{name: "raw newline in a string", subject: "create", body: user("create", "{"+ok+",\"first_name\":\"Al\nice\"}"), want: "not valid JSON"},
		{name: "non-UTF-8 bytes", subject: "create", body: user("create", "{"+ok+",\"first_name\":\"Ren\xe9e\"}"), want: "not valid UTF-8"},
		{name: "254 KiB body", subject: "create", body: big, want: "the limit is 65536 bytes"},
		{name: "deeply nested garbage", subject: "create", body: user("create", `{`+ok+`,"feature":`+deep+`}`), want: "deeper than 32 levels"},

		// Wrong types.
		{name: "type as a string", subject: "create", body: user("create", `{"email":"p@example.com","type":"1"}`), want: "user_info.type: must be an integer"},
		{name: "type as a fraction", subject: "create", body: user("create", `{"email":"p@example.com","type":1.5}`), want: "user_info.type: must be an integer"},
		{name: "type as a boolean", subject: "create", body: user("create", `{"email":"p@example.com","type":true}`), want: "user_info.type: must be an integer"},
		{name: "type beyond 64 bits", subject: "create", body: user("create", `{"email":"p@example.com","type":99999999999999999999}`), want: "user_info.type: must be an integer that fits in 64 bits"},
		{name: "email null", subject: "create", body: user("create", `{"email":null,"type":1}`), want: "user_info.email: is required"},
		{name: "email as a number", subject: "create", body: user("create", `{"email":42,"type":1}`), want: "user_info.email: must be a string"},
		{name: "action as an object", subject: "create", body: `{"action":{"name":"create"},"user_info":{` + ok + `}}`, want: "action: must be a string"},
		{name: "user_info as a number", subject: "create", body: `{"action":"create","user_info":7}`, want: "user_info: must be an object or a string holding a JSON object"},
		{name: "user_info string holding garbage", subject: "create", body: `{"action":"create","user_info":"{email: p@example.com"}`, want: "user_info: string form is not valid JSON"},
		{name: "user_info string holding an array", subject: "create", body: `{"action":"create","user_info":"[1,2]"}`, want: "user_info: string form must be a JSON object"},
		{name: "nested garbage in feature", subject: "create", body: user("create", `{`+ok+`,"feature":{"zoom_phone":{"on":[1,{"x":null}]}}}`), want: "user_info.feature.zoom_phone: must be a boolean"},

		// Missing fields.
		{name: "missing action", subject: "create", body: `{"user_info":{` + ok + `}}`, want: "action: is required"},
		{name: "missing user_info", subject: "create", body: `{"action":"create"}`, want: "user_info: is required"},
		{name: "missing email", subject: "create", body: user("create", `{"type":1}`), want: "user_info.email: is required"},
		{name: "missing type", subject: "create", body: user("create", `{"email":"p@example.com"}`), want: "user_info.type: is required"},
		{name: "empty object", subject: "create", body: `{}`, want: "action: is required"},

		// Overlong fields, counted in characters.
		{name: "email of 129 characters", subject: "create", body: user("create", `{"email":"`+strings.Repeat("e", 117)+`@example.com","type":1}`), want: "user_info.email: must be at most 128 characters (got 129)"},
		{name: "first name of 65 multibyte characters", subject: "create", body: user("create", `{`+ok+`,"first_name":"`+strings.Repeat("é", 65)+`"}`), want: "user_info.first_name: must be at most 64 characters (got 65)"},
		{name: "last name of 65 characters", subject: "create", body: user("create", `{`+ok+`,"last_name":"`+strings.Repeat("名", 65)+`"}`), want: "user_info.last_name: must be at most 64 characters (got 65)"},
		{name: "display name of 129 emoji", subject: "create", body: user("create", `{`+ok+`,"display_name":"`+strings.Repeat("😀", 129)+`"}`), want: "user_info.display_name: must be at most 128 characters (got 129)"},

		// Control characters and NUL bytes, escaped in valid JSON.
		{name: "NUL in the email", subject: "create", body: user("create", `{"email":"p\u0000@example.com","type":1}`), want: "user_info.email: must not contain control characters"},
		{name: "bell in the first name", subject: "create", body: user("create", `{`+ok+`,"first_name":"Al\u0007ice"}`), want: "user_info.first_name: must not contain control characters"},
		{name: "CR LF in the display name", subject: "create", body: user("create", `{`+ok+`,"display_name":"Alice\r\nZoom-Provisioning-Reason: ok"}`), want: "user_info.display_name: must not contain control characters"},
		{name: "NUL in the last name", subject: "create", body: user("create", `{`+ok+`,"last_name":"\u0000"}`), want: "user_info.last_name: must not contain control characters"},

		// Bad values.
		{name: "email with a display name", subject: "create", body: user("create", `{"email":"Alice <p@example.com>","type":1}`), want: "user_info.email: must be a bare email address"},
		{name: "email with a space", subject: "create", body: user("create", `{"email":"p q@example.com","type":1}`), want: "user_info.email: must not contain spaces"},
		{name: "type 3", subject: "create", body: user("create", `{"email":"p@example.com","type":3}`), want: "user_info.type: must be one of 1, 2, 4, 99"},
		{name: "type 99 with custCreate", subject: "custCreate", body: user("custCreate", `{"email":"p@example.com","type":99}`), want: "user_info.type: 99 is only allowed with action ssoCreate"},
		{name: "autoCreate with a 7-character password", subject: "autoCreate", body: user("autoCreate", `{`+ok+`,"password":"Pz!4567"}`), want: "user_info.password: must be 8 to 32 characters"},
		{name: "autoCreate with a 33-character password", subject: "autoCreate", body: user("autoCreate", `{`+ok+`,"password":"`+poisonPassword+strings.Repeat("x", 33-len(poisonPassword))+`"}`), want: "user_info.password: must be 8 to 32 characters"},
		{name: "autoCreate without a password", subject: "autoCreate", body: user("autoCreate", `{`+ok+`}`), want: "user_info.password: is required for action autoCreate"},
		{name: "license list too long", subject: "create", body: user("create", `{`+ok+`,"license_info_list":[{"license_type":"MEETING","subscription_id":"a"},{"license_type":"MEETING","subscription_id":"b"},{"license_type":"MEETING","subscription_id":"c"}]}`), want: "user_info.license_info_list: must have at most 2 items (got 3)"},
		{name: "plan type not digits", subject: "create", body: user("create", `{`+ok+`,"plan_united_type":"pro"}`), want: `user_info.plan_united_type: must be a string of digits`},

		// Unknown and duplicate fields.
		{name: "unknown top-level field", subject: "create", body: `{"action":"create","user_info":{` + ok + `},"priority":"high"}`, want: "priority: unknown field"},
		{name: "unknown nested field", subject: "create", body: user("create", `{`+ok+`,"manager":"boss@example.com"}`), want: "user_info.manager: unknown field"},
		{name: "unknown field in feature", subject: "create", body: user("create", `{`+ok+`,"feature":{"zoom_phone":true,"zoom_meeting":true}}`), want: "user_info.feature.zoom_meeting: unknown field"},
		{name: "field name in another case", subject: "create", body: user("create", `{"Email":"p@example.com","type":1}`), want: "user_info.Email: unknown field"},
		{name: "unknown key with control characters", subject: "create", body: user("create", `{`+ok+`,"\u0000evil\r\nkey":1}`), want: "unknown field"},
		{name: "thousands of unknown fields", subject: "create", body: user("create", `{`+ok+`,`+strings.Join(manyUnknown, ",")+`}`), want: "user_info.x0: unknown field"},
		{name: "duplicate top-level key", subject: "create", body: `{"action":"create","action":"ssoCreate","user_info":{` + ok + `}}`, want: "action: duplicate key"},
		{name: "duplicate nested key", subject: "autoCreate", body: user("autoCreate", `{`+ok+`,"password":"`+poisonPassword+`","password":"other-password-1"}`), want: "user_info.password: duplicate key"},
		{name: "duplicate key in the string form", subject: "create", body: `{"action":"create","user_info":"{\"email\":\"p@example.com\",\"email\":\"q@example.com\",\"type\":1}"}`, want: "user_info.email: duplicate key"},

		// Actions and subjects.
		{name: "unknown action", subject: "create", body: user("delete", `{`+ok+`}`), want: "action: must be one of create, autoCreate, custCreate, ssoCreate"},
		{name: "action in another case", subject: "create", body: user("Create", `{`+ok+`}`), want: "action: must be one of"},
		{name: "action differs from the subject", subject: "create", body: user("ssoCreate", `{`+ok+`,"password":"`+poisonPassword+`"}`), want: `does not match the subject's action "create"`},
		{name: "subject names no action", subject: "bogus", body: user("create", `{`+ok+`}`), want: "names no action"},
	}
}

// Ensure every request of the poison catalogue, published to one running
// service, ends in the dead-letter stream with reason invalid_request and a
// message that names the problem, with a failed result event and without a
// Zoom call, and that the service goes on to create a valid user after
// all of them.
func TestPoisonRequests(t *testing.T) {
	h := newHarness(t, testenv.SimConfig{})
	catalogue := poisonCatalogue()
	if len(catalogue) < 30 {
		t.Fatalf("catalogue has %d requests; want at least 30", len(catalogue))
	}
	ids := make([]string, len(catalogue))
	byID := map[string]poisonRequest{}
	for i, p := range catalogue {
		ids[i] = fmt.Sprintf("poison-%02d", i)
		byID[ids[i]] = p
	}
	// Requests on a subject that names no action reach no consumer; the
	// service sweeps them at start-up (and every 30 s), so they go first.
	for i, p := range catalogue {
		if p.subject == "bogus" {
			h.publish(ids[i], p.subject, p.body)
		}
	}
	r := h.start(testConfig(3))
	for i, p := range catalogue {
		if p.subject != "bogus" {
			h.publish(ids[i], p.subject, p.body)
		}
	}
	evs := h.waitTerminal(30*time.Second, ids...)

	dlq := map[string]*jetstream.RawStreamMsg{}
	for _, m := range h.storedMsgs("ZOOM_USERS_DLQ") {
		id := m.Header.Get(deadletter.HeaderRequestID)
		if dlq[id] != nil {
			t.Errorf("request %s dead-lettered twice", id)
		}
		dlq[id] = m
	}
	for _, id := range ids {
		p := byID[id]
		t.Run(p.name, func(t *testing.T) {
			term := terminal(evs[id])
			if len(term) != 1 || len(evs[id]) != 1 {
				t.Fatalf("result events = %+v; want exactly one, failed", evs[id])
			}
			res := term[0].Data
			if res.Outcome != messages.OutcomeFailed || res.Reason != messages.ReasonInvalidRequest || res.HTTPStatus != 0 || res.Action != p.subject {
				t.Errorf("result = {%s %s http %d action %q}; want {failed invalid_request http 0 action %q}", res.Outcome, res.Reason, res.HTTPStatus, res.Action, p.subject)
			}
			if strings.Contains(res.ZoomMessage, poisonPassword) || strings.Contains(res.ZoomMessage, "Pz!4567") {
				t.Errorf("result zoom_message = %q; want no password in it", res.ZoomMessage)
			}

			m := dlq[id]
			if m == nil {
				t.Fatalf("no dead letter")
			}
			// Byte for byte, but for the passwords, which a service
			// without a seal key redacts.
			want := passwordPattern.ReplaceAllStringFunc(p.body, func(m string) string {
				return m[:strings.LastIndex(m, passwordPattern.FindStringSubmatch(m)[1])] + deadletter.PasswordRedacted
			})
			if string(m.Data) != want {
				t.Errorf("dead letter body\n%q\nwant the request with only its passwords redacted:\n%q", m.Data, want)
			}
			if hasPassword := want != p.body; hasPassword != (m.Header.Get(deadletter.HeaderPassword) == deadletter.PasswordRedacted) {
				t.Errorf("Zoom-Password header %q; want %q exactly when the body had a password", m.Header.Get(deadletter.HeaderPassword), deadletter.PasswordRedacted)
			}
			if want := "zoom.users.dlq." + p.subject; m.Subject != want {
				t.Errorf("dead letter subject = %s; want %s", m.Subject, want)
			}
			dl, err := deadletter.Parse(m.Header)
			if err != nil {
				t.Fatalf("ParseDeadLetter: %v", err)
			}
			if dl.Reason != messages.ReasonInvalidRequest || dl.HTTPStatus != 0 || dl.ZoomCode != 0 || dl.OriginalSubject != "zoom.users.create."+p.subject {
				t.Errorf("dead letter = {%s http %d code %d subject %s}; want {invalid_request 0 0 zoom.users.create.%s}", dl.Reason, dl.HTTPStatus, dl.ZoomCode, dl.OriginalSubject, p.subject)
			}
			msg := m.Header.Get(deadletter.HeaderErrorMessage)
			if !strings.Contains(msg, p.want) {
				t.Errorf("%s = %q; want it to say %q", deadletter.HeaderErrorMessage, msg, p.want)
			}
			if len(msg) > 512 || !utf8.ValidString(msg) || strings.ContainsFunc(msg, unicode.IsControl) {
				t.Errorf("%s = %q (%d bytes); want at most 512 bytes of UTF-8 without control characters", deadletter.HeaderErrorMessage, msg, len(msg))
			}
			for k, vs := range m.Header {
				for _, v := range vs {
					if strings.Contains(v, poisonPassword) || strings.Contains(v, "Pz!4567") {
						t.Errorf("dead letter header %s = %q; want no password in it", k, v)
					}
				}
			}
		})
	}

	// Not one of them reached Zoom's API. (The service may fetch a token
	// at start-up to check its credentials; that is no API call.)
	for _, rec := range h.sim.Requests() {
		if strings.HasPrefix(rec.Path, "/v2") {
			t.Errorf("zoom saw %s %s; want no API call for invalid requests", rec.Method, rec.Path)
		}
	}
	if log := h.log.String(); strings.Contains(log, poisonPassword) || strings.Contains(log, "Pz!4567") {
		t.Errorf("service log contains a password")
	}
	if strings.Contains(h.log.String(), `"level":"error"`) {
		t.Errorf("service logged an error for invalid requests; want warnings only:\n%s", errorLines(h.log.String()))
	}

	// The service is still running and still provisions.
	select {
	case err := <-r.done:
		r.done <- err
		t.Fatalf("service stopped with %v after the poison requests", err)
	default:
	}
	if !r.svc.Status().Bound {
		t.Fatalf("service not bound after the poison requests")
	}
	h.publish("after-poison", "ssoCreate", userBody("ssoCreate", "after-poison@example.com", 1))
	term := terminal(h.waitTerminal(15*time.Second, "after-poison")["after-poison"])
	if len(term) != 1 || term[0].Data.Outcome != messages.OutcomeCreated {
		t.Fatalf("valid request after the poison ones = %+v; want created", term)
	}
	eventually(t, 5*time.Second, func() (bool, string) {
		n := h.streamMsgCount("ZOOM_USERS")
		return n == 0, fmt.Sprintf("request stream holds %d messages; want 0", n)
	})
}

// errorLines returns the error-level lines of a JSON log.
func errorLines(log string) string {
	var out []string
	for line := range strings.Lines(log) {
		if strings.Contains(line, `"level":"error"`) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}

// Ensure a request that the request stream accepts can always be
// dead-lettered, and one too large for that is refused when published: the
// request stream's size limit keeps every stored request small enough for
// its dead letter (the same body plus the dead-letter headers) under NATS's
// max payload, so nothing is handed back forever.
func TestPoisonAtMaxPayload(t *testing.T) {
	h := newHarness(t, testenv.SimConfig{})
	huge := user("create", `{"email":"max@example.com","type":1,"first_name":"`+strings.Repeat("m", int(h.nc.MaxPayload())-300)+`"}`)
	m := nats.NewMsg("zoom.users.create.create")
	m.Data = []byte(huge)
	if _, err := h.js.PublishMsg(context.Background(), m); err == nil {
		t.Fatalf("publishing a %d-byte request succeeded; want the request stream to refuse it", len(huge))
	}
	// The largest request the stream takes still gets its dead letter.
	largest := user("create", `{"email":"max@example.com","type":1,"first_name":"`+strings.Repeat("m", topology.MaxRequestBytes-300)+`"}`)
	h.publish("poison-max", "create", largest)
	h.start(testConfig(3))
	term := terminal(h.waitTerminal(15*time.Second, "poison-max")["poison-max"])
	if len(term) != 1 || term[0].Data.Reason != messages.ReasonInvalidRequest {
		t.Fatalf("terminal results = %+v; want one failed invalid_request", term)
	}
	eventually(t, 5*time.Second, func() (bool, string) {
		n := h.streamMsgCount("ZOOM_USERS")
		return n == 0, fmt.Sprintf("request stream holds %d messages; want 0", n)
	})
}
