package console

import (
	"errors"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/zoomprov/consumer/internal/audit"
	"github.com/zoomprov/consumer/internal/deadletter"
	"github.com/zoomprov/consumer/internal/dlq"
	"github.com/zoomprov/consumer/internal/guard"
	"github.com/zoomprov/consumer/internal/ledger"
	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/quota"
)

// pageNames are the templates, each parsed with layout.html.
var pageNames = []string{"login", "error", "overview", "dlq", "dlqshow", "confirm", "done", "guard", "quota", "user"}

var funcs = template.FuncMap{
	"mask": messages.MaskEmail,
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"plural": plural,
	"dash": func(n int) string {
		if n == 0 {
			return "-"
		}
		return strconv.Itoa(n)
	},
	"left": func(until, now time.Time) string {
		return until.Sub(now).Round(time.Second).String()
	},
	"share": func(f float64) string { return strconv.FormatFloat(f, 'g', 4, 64) },
}

func parsePages() (map[string]*template.Template, error) {
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// plural says "1 dead letter", "2 dead letters".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// gateView is a quota gate as the pages show it.
type gateView struct {
	quota.Gate
	Closed bool
	Left   string
}

func gateViews(gs []quota.Gate, now time.Time) []gateView {
	out := make([]gateView, 0, len(gs))
	for _, g := range gs {
		v := gateView{Gate: g, Closed: g.Closed(now)}
		if v.Closed {
			v.Left = g.Until.Sub(now).Round(time.Second).String()
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Scope < out[j].Scope })
	return out
}

// guardView is the guard as the pages show it.
type guardView struct {
	State        string
	Limit        int
	Window       string
	Used         int
	TrippedAt    time.Time
	TrippedBy    string
	Held         int
	ApprovedUpTo uint64
	RejectedUpTo uint64
	Decision     *guard.Decision
}

// readGuard reads the guard and the requests it holds.
func (c *Console) readGuard(r *http.Request) (guardView, error) {
	st, err := guard.Load(r.Context(), c.cfg.JS, c.cfg.Topology)
	if err != nil {
		return guardView{}, err
	}
	v := guardView{State: "open", Limit: st.Limit, Window: st.Window.String(), Used: st.Used(c.cfg.Now()),
		ApprovedUpTo: st.ApprovedUpTo, RejectedUpTo: st.RejectedUpTo, Decision: st.Decision,
		Held: guard.Waiting(r.Context(), c.cfg.JS, c.cfg.Topology)}
	if st.Tripped {
		v.State, v.TrippedAt, v.TrippedBy = "tripped", st.TrippedAt, st.TrippedBy
	}
	return v, nil
}

// errText is an error for a page.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// overview shows the backlog, the gates and shares, the guard, the
// results of the last hour and the dead-letter count.
func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	ctx, now := r.Context(), c.cfg.Now()
	var d struct {
		Now         time.Time
		Quota       quota.Status
		Gates       []gateView
		QuotaErr    string
		Guard       guardView
		GuardErr    string
		DeadLetters uint64
		DLQErr      string
		Chart       chartView
		ChartErr    string
	}
	d.Now = now
	st, err := quota.Read(ctx, c.cfg.JS, c.cfg.Topology, c.cfg.Actions, now)
	d.Quota, d.Gates, d.QuotaErr = st, gateViews(st.Gates, now), errText(err)
	d.Guard, err = c.readGuard(r)
	d.GuardErr = errText(err)
	d.DeadLetters, err = dlq.Count(ctx, c.cfg.JS, c.cfg.Topology)
	d.DLQErr = errText(err)
	ch, err := c.rates.get(ctx, c.cfg.JS, c.cfg.Topology, now)
	d.Chart, d.ChartErr = ch.view(), errText(err)
	c.render(w, r, http.StatusOK, "overview", page{Title: "Overview", Nav: "overview", Data: d})
}

// deadLetterReasons are the reasons a dead letter can have.
var deadLetterReasons = []messages.Reason{
	messages.ReasonInvalidRequest, messages.ReasonZoomRejected, messages.ReasonNotFound,
	messages.ReasonRetriesExhausted, messages.ReasonGuardRejected,
}

// filterView is a dead-letter filter as the forms carry it.
type filterView struct {
	Action, Reason, Email string
}

// Query is the filter as a URL query.
func (f filterView) Query() string {
	q := url.Values{}
	for k, v := range map[string]string{"action": f.Action, "reason": f.Reason, "email": f.Email} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q.Encode()
}

// IsZero reports whether the filter selects every dead letter.
func (f filterView) IsZero() bool { return f == filterView{} }

// parseFilter reads the filter fields action, reason and email, checked
// as `consumer dlq` checks its flags.
func parseFilter(get func(string) string) (dlq.Filter, filterView, error) {
	v := filterView{Action: strings.TrimSpace(get("action")), Reason: strings.TrimSpace(get("reason")), Email: strings.TrimSpace(get("email"))}
	var f dlq.Filter
	if v.Action != "" {
		if strings.ContainsAny(v.Action, " \t*>") {
			return f, v, fmt.Errorf("want an action such as ssoCreate, got %q", v.Action)
		}
		f.Actions = []string{v.Action}
	}
	if v.Reason != "" {
		if !slices.Contains(deadLetterReasons, messages.Reason(v.Reason)) {
			return f, v, fmt.Errorf("unknown reason %q", v.Reason)
		}
		f.Reasons = []messages.Reason{messages.Reason(v.Reason)}
	}
	if v.Email != "" {
		if strings.TrimPrefix(v.Email, "@") == "" || strings.ContainsAny(v.Email, " \t") || strings.Count(v.Email, "@") > 1 {
			return f, v, fmt.Errorf("want an address or a domain such as @example.com, got %q", v.Email)
		}
		f.Email = v.Email
	}
	return f, v, nil
}

// maxRows bounds the dead letters one list shows; actions on "all that
// match" still reach every one.
const maxRows = 500

// dlqRow is one dead letter in the list.
type dlqRow struct {
	Seq           uint64
	Time          time.Time
	Action        string
	Reason        string
	HTTPStatus    int
	ZoomCode      int
	Message       string
	RequestID     string
	Email         string
	NotReplayable string
}

func (c *Console) row(e dlq.Entry) dlqRow {
	d := e.DeadLetter
	row := dlqRow{Seq: e.Seq, Time: e.Time, Action: e.Action, Reason: string(d.Reason), HTTPStatus: d.HTTPStatus, ZoomCode: d.ZoomCode,
		Message: plainMessage(d.ZoomMessage), RequestID: e.RequestID(c.cfg.Topology), Email: e.Email}
	if err := e.Replayable(); err != nil {
		row.NotReplayable = plainMessage(err.Error())
	}
	return row
}

// plainMessage drops the prefix the consumer puts on validation errors.
func plainMessage(s string) string {
	return strings.TrimPrefix(s, messages.ErrInvalid.Error()+": ")
}

// dlqList lists the dead letters a filter selects.
func (c *Console) dlqList(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	f, fv, ferr := parseFilter(r.URL.Query().Get)
	d := struct {
		Filter    filterView
		Actions   []string
		Reasons   []messages.Reason
		Rows      []dlqRow
		Matched   int
		Total     uint64
		Truncated bool
		Problem   string
		Err       string
	}{Filter: fv, Actions: c.cfg.Actions, Reasons: deadLetterReasons}
	status := http.StatusOK
	if ferr != nil {
		d.Problem, status = ferr.Error(), http.StatusBadRequest
		c.render(w, r, status, "dlq", page{Title: "Dead letters", Nav: "dlq", Data: d})
		return
	}
	total, err := dlq.Count(ctx, c.cfg.JS, c.cfg.Topology)
	if err == nil {
		var entries []dlq.Entry
		entries, err = dlq.List(ctx, c.cfg.JS, c.cfg.Topology, f)
		d.Total, d.Matched = total, len(entries)
		for i, e := range entries {
			if i == maxRows {
				d.Truncated = true
				break
			}
			d.Rows = append(d.Rows, c.row(e))
		}
	}
	if err != nil {
		d.Err, status = err.Error(), http.StatusBadGateway
	}
	c.render(w, r, status, "dlq", page{Title: "Dead letters", Nav: "dlq", Data: d})
}

// headerLine is one header of a dead letter.
type headerLine struct{ Name, Value string }

// orderedHeaders lists the dead-letter headers first, in their documented
// order, then the replay headers, then the others alphabetically.
func orderedHeaders(h map[string][]string) []headerLine {
	first := []string{
		deadletter.HeaderReason, deadletter.HeaderHTTPStatus, deadletter.HeaderErrorCode, deadletter.HeaderErrorMessage,
		deadletter.HeaderOriginalSubject, deadletter.HeaderOriginalSequence, deadletter.HeaderRequestID,
		deadletter.HeaderDeliveries, deadletter.HeaderDeadLetteredAt, deadletter.HeaderPassword, deadletter.HeaderSealKey,
		messages.HeaderReplayedFrom, messages.HeaderOriginalRequestID,
	}
	var rest []string
	for k := range h {
		if !slices.Contains(first, k) {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	var out []headerLine
	for _, k := range append(first, rest...) {
		for _, v := range h[k] {
			out = append(out, headerLine{k, v})
		}
	}
	return out
}

// dlqShow shows one dead letter, its passwords masked.
func (c *Console) dlqShow(w http.ResponseWriter, r *http.Request) {
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil || seq == 0 {
		c.fail(w, r, http.StatusNotFound, "There is no such dead letter.")
		return
	}
	e, err := dlq.Get(r.Context(), c.cfg.JS, c.cfg.Topology, seq)
	if errors.Is(err, dlq.ErrNotFound) {
		c.fail(w, r, http.StatusNotFound, fmt.Sprintf("There is no dead letter %d: it was replayed or purged, or never existed.", seq))
		return
	}
	if err != nil {
		c.fail(w, r, http.StatusBadGateway, err.Error())
		return
	}
	body, bodyOK := deadletter.MaskBody(e.Body)
	d := struct {
		Row     dlqRow
		Subject string
		Stored  time.Time
		Headers []headerLine
		Body    string
		BodyOK  bool
	}{Row: c.row(e), Subject: e.Subject, Stored: e.Stored, Headers: orderedHeaders(e.Headers), Body: body, BodyOK: bodyOK}
	c.render(w, r, http.StatusOK, "dlqshow", page{Title: fmt.Sprintf("Dead letter %d", seq), Nav: "dlq", Data: d})
}

// selection is what a replay or purge acts on: one dead letter (Seq) or
// every one a filter selects, up to UpTo once the count is confirmed.
type selection struct {
	Seq    uint64
	Filter dlq.Filter
	View   filterView
	// Confirmed is the count the operator confirmed (-1: not yet), of the
	// dead letters up to sequence UpTo.
	Confirmed int
	UpTo      uint64
	// Reason is the operator's reason for the audit event (optional).
	Reason string
}

func (c *Console) parseSelection(r *http.Request) (selection, error) {
	s := selection{Confirmed: -1, Reason: strings.TrimSpace(r.PostFormValue("audit_reason"))}
	if v := r.PostFormValue("seq"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			return s, fmt.Errorf("want the sequence of a dead letter, got %q", v)
		}
		s.Seq = n
		s.Filter.Seqs = []dlq.SeqRange{{From: n, To: n}}
	} else {
		var err error
		if s.Filter, s.View, err = parseFilter(r.PostFormValue); err != nil {
			return s, err
		}
	}
	if v := r.PostFormValue("confirm"); v != "" {
		n, err := strconv.Atoi(v)
		up, uerr := strconv.ParseUint(r.PostFormValue("upto"), 10, 64)
		if err != nil || n < 0 || uerr != nil {
			return s, errors.New("the confirmation is malformed")
		}
		s.Confirmed, s.UpTo = n, up
		if s.Seq == 0 {
			s.Filter.Seqs = []dlq.SeqRange{{From: 1, To: max(up, 1)}}
		}
	}
	return s, nil
}

// confirmData is the confirmation page of a replay or purge.
type confirmData struct {
	Verb    string // "replay" or "purge"
	Seq     uint64
	Filter  filterView
	Count   int
	UpTo    uint64
	Changed bool
	Reason  string
	// Plan is what a replay would do (a dry run).
	Plan    *dlq.Summary
	PlanErr string
	Gate    string
}

// doneData is the outcome page of a replay or purge.
type doneData struct {
	Verb     string
	Summary  dlq.Summary
	Lines    []string
	Err      string
	Replayed []replayed
	Filter   filterView
}

// replayed is a dead letter republished, and where its result will show.
type replayed struct {
	Seq        uint64
	RequestID  string
	ReplayID   string
	Email      string
	HistoryURL string
}

// dlqReplay replays one dead letter at once, or every one a filter
// selects once the count is confirmed.
func (c *Console) dlqReplay(w http.ResponseWriter, r *http.Request) { c.dlqAct(w, r, "replay") }

// dlqPurge purges one dead letter, or every one a filter selects, once
// the count is confirmed.
func (c *Console) dlqPurge(w http.ResponseWriter, r *http.Request) { c.dlqAct(w, r, "purge") }

func (c *Console) dlqAct(w http.ResponseWriter, r *http.Request, verb string) {
	ctx := r.Context()
	sel, err := c.parseSelection(r)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	entries, err := dlq.List(ctx, c.cfg.JS, c.cfg.Topology, sel.Filter)
	if err != nil {
		c.fail(w, r, http.StatusBadGateway, err.Error())
		return
	}
	if len(entries) == 0 {
		c.fail(w, r, http.StatusNotFound, "No dead letter matches (any longer): nothing was changed.")
		return
	}
	// One replay goes at once; anything else waits for the count to be
	// confirmed, and runs only if the count is still the same.
	if !(verb == "replay" && sel.Seq != 0) && sel.Confirmed != len(entries) {
		d := confirmData{Verb: verb, Seq: sel.Seq, Filter: sel.View, Count: len(entries), Changed: sel.Confirmed >= 0, Reason: sel.Reason}
		for _, e := range entries {
			d.UpTo = max(d.UpTo, e.Seq)
		}
		if verb == "replay" {
			plan, err := dlq.Replay(ctx, c.cfg.JS, c.cfg.Topology, entries, dlq.Options{DryRun: true, Keys: c.cfg.Keys})
			d.Plan, d.PlanErr = &plan, errText(err)
			if g := plan.Gate; g != nil {
				d.Gate = fmt.Sprintf("The %s quota gate is closed until %s (%s): a replay now would be refused.", g.Scope, g.Until.UTC().Format(time.RFC3339), g.Reason)
			}
		}
		status := http.StatusOK
		if d.Changed {
			status = http.StatusConflict
		}
		c.render(w, r, status, "confirm", page{Title: "Confirm", Nav: "dlq", Data: d})
		return
	}

	actor := sessionOf(r).tok.name
	d := doneData{Verb: verb, Filter: sel.View}
	var sum dlq.Summary
	if verb == "replay" {
		progress := func(p dlq.Progress) {
			if p.Status != dlq.StatusReplayed && p.Status != dlq.StatusDuplicate {
				return
			}
			id := p.Entry.RequestID(c.cfg.Topology)
			rp := replayed{Seq: p.Entry.Seq, RequestID: id, ReplayID: dlq.ReplayID(id, p.Entry.Seq), Email: p.Entry.Email}
			if rp.Email != "" {
				rp.HistoryURL = basePath + "user?" + url.Values{"email": {rp.Email}, "wait": {rp.ReplayID}}.Encode()
			}
			d.Replayed = append(d.Replayed, rp)
		}
		sum, err = dlq.Replay(ctx, c.cfg.JS, c.cfg.Topology, entries, dlq.Options{Rate: c.cfg.ReplayRate, Keys: c.cfg.Keys,
			Actor: actor, Reason: sel.Reason, OnProgress: progress})
	} else {
		sum, err = dlq.Purge(ctx, c.cfg.JS, c.cfg.Topology, entries, dlq.PurgeOptions{Actor: actor, Reason: sel.Reason})
	}
	d.Summary = sum
	for _, s := range sum.Skipped {
		d.Lines = append(d.Lines, fmt.Sprintf("Skipped %d (request %s): still invalid: %s", s.Seq, s.RequestID, plainMessage(s.Err.Error())))
	}
	for _, s := range sum.Refused {
		d.Lines = append(d.Lines, fmt.Sprintf("Refused %d (request %s): %s", s.Seq, s.RequestID, s.Err))
	}
	for _, s := range sum.Superseded {
		d.Lines = append(d.Lines, fmt.Sprintf("Refused %d (request %s): %s (consumer dlq replay --force replays it anyway)", s.Seq, s.RequestID, s.Error()))
	}
	status := http.StatusOK
	var gateErr *dlq.GateClosedError
	switch {
	case err == nil:
	case errors.As(err, &gateErr):
		d.Err, status = fmt.Sprintf("Not replayed: the %s quota gate is closed until %s; %d dead letters wait for the reset (or consumer dlq replay --force).",
			gateErr.Gate.Scope, gateErr.Gate.Until.UTC().Format(time.RFC3339), gateErr.Pending), http.StatusConflict
	case errors.Is(err, dlq.ErrLedgerUnavailable):
		d.Err, status = err.Error()+" (consumer dlq replay --force replays without looking)", http.StatusConflict
	default:
		d.Err, status = err.Error(), http.StatusBadGateway
	}
	c.cfg.Logger.Info().Str("actor", actor).Str("verb", verb).Int("total", sum.Total).Int("replayed", sum.Replayed).
		Int("deleted", sum.Deleted).AnErr("error", err).Msg("console: dead letters")
	c.render(w, r, status, "done", page{Title: "Done", Nav: "dlq", Data: d})
}

// notices are the lines a page shows after an action redirected to it.
var notices = map[string]string{
	"released": "Released: the held deactivations and deletions go to Zoom; the guard is open and its window starts afresh.",
	"rejected": "Rejected: the held deactivations and deletions are dead-lettered (guard_rejected) without a Zoom call; the guard is open.",
	"opened":   "Opened: the gate is open for every replica, and its consumers resume.",
}

// guardPage shows the guard and, when it is tripped, the forms to release
// or reject what it holds.
func (c *Console) guardPage(w http.ResponseWriter, r *http.Request) {
	c.renderGuard(w, r, http.StatusOK, notices[r.URL.Query().Get("done")], "")
}

func (c *Console) renderGuard(w http.ResponseWriter, r *http.Request, status int, notice, problem string) {
	g, err := c.readGuard(r)
	d := struct {
		Guard   guardView
		Err     string
		Problem string
	}{Guard: g, Err: errText(err), Problem: problem}
	if err != nil && status == http.StatusOK {
		status = http.StatusBadGateway
	}
	c.render(w, r, status, "guard", page{Title: "Guard", Nav: "guard", Notice: notice, Data: d})
}

// guardDecide releases or rejects what the guard holds.
func (c *Console) guardDecide(w http.ResponseWriter, r *http.Request) {
	decide := map[string]func(r *http.Request, actor, reason string) (guard.Resolution, error){
		"release": func(r *http.Request, actor, reason string) (guard.Resolution, error) {
			return guard.Release(r.Context(), c.cfg.JS, c.cfg.Topology, actor, reason, c.cfg.Now())
		},
		"reject": func(r *http.Request, actor, reason string) (guard.Resolution, error) {
			return guard.Reject(r.Context(), c.cfg.JS, c.cfg.Topology, actor, reason, c.cfg.Now())
		},
	}[r.PathValue("verb")]
	if decide == nil {
		c.fail(w, r, http.StatusNotFound, "There is no such page.")
		return
	}
	actor := sessionOf(r).tok.name
	res, err := decide(r, actor, strings.TrimSpace(r.PostFormValue("reason")))
	switch {
	case errors.Is(err, audit.ErrNoReason):
		c.renderGuard(w, r, http.StatusBadRequest, "", "Give a reason: it is recorded in the audit event. Nothing was changed.")
		return
	case errors.Is(err, guard.ErrOpen):
		c.renderGuard(w, r, http.StatusConflict, "", "The guard is open: nothing is held, nothing was changed.")
		return
	case err != nil:
		c.renderGuard(w, r, http.StatusBadGateway, "", err.Error())
		return
	}
	c.cfg.Logger.Info().Str("actor", actor).Str("verb", res.Verb).Int("held", res.Held).Msg("console: guard")
	http.Redirect(w, r, basePath+"guard?done="+res.Verb, http.StatusSeeOther)
}

// quotaPage shows the gates, each replica's share and the backlog, and
// the form that opens a closed gate.
func (c *Console) quotaPage(w http.ResponseWriter, r *http.Request) {
	c.renderQuota(w, r, http.StatusOK, notices[r.URL.Query().Get("done")], "")
}

func (c *Console) renderQuota(w http.ResponseWriter, r *http.Request, status int, notice, problem string) {
	now := c.cfg.Now()
	st, err := quota.Read(r.Context(), c.cfg.JS, c.cfg.Topology, c.cfg.Actions, now)
	d := struct {
		Quota    quota.Status
		Gates    []gateView
		Total    float64
		QuotaErr string
		Problem  string
	}{Quota: st, Gates: gateViews(st.Gates, now), QuotaErr: errText(err), Problem: problem}
	for _, rs := range st.Replicas {
		d.Total += rs.Share
	}
	d.Total = math.Round(d.Total*1000) / 1000
	if err != nil && status == http.StatusOK {
		status = http.StatusBadGateway
	}
	c.render(w, r, status, "quota", page{Title: "Quota", Nav: "quota", Notice: notice, Data: d})
}

// quotaOpen opens a closed gate before its reset.
func (c *Console) quotaOpen(w http.ResponseWriter, r *http.Request) {
	actor := sessionOf(r).tok.name
	scope := r.PostFormValue("scope")
	_, _, err := quota.Open(r.Context(), c.cfg.JS, c.cfg.Topology, scope, actor, strings.TrimSpace(r.PostFormValue("reason")), c.cfg.Now())
	switch {
	case errors.Is(err, audit.ErrNoReason):
		c.renderQuota(w, r, http.StatusBadRequest, "", "Give a reason: it is recorded in the audit event. Nothing was changed.")
		return
	case errors.Is(err, quota.ErrScope):
		c.renderQuota(w, r, http.StatusBadRequest, "", err.Error())
		return
	case errors.Is(err, quota.ErrGateOpen):
		c.renderQuota(w, r, http.StatusConflict, "", "The "+scope+" gate is open: nothing was changed.")
		return
	case err != nil:
		c.renderQuota(w, r, http.StatusBadGateway, "", err.Error())
		return
	}
	c.cfg.Logger.Info().Str("actor", actor).Str("scope", scope).Msg("console: quota gate opened")
	http.Redirect(w, r, basePath+"quota?done=opened", http.StatusSeeOther)
}

// userData is the user page.
type userData struct {
	Email   string
	View    *ledger.View
	Err     string
	Problem string
	// ForgetProblem says why an erasure was refused.
	ForgetProblem string
	// Wait is a request whose result the page waits for (a replay's).
	Wait  string
	Found bool
}

// checkEmail checks an address as `consumer user` does.
func checkEmail(e string) error {
	if strings.ContainsAny(e, " \t\r\n") || !strings.Contains(e, "@") || len(e) > 512 {
		return fmt.Errorf("want an address such as bob@example.com, got %q", e)
	}
	return nil
}

// userPage searches a person by address and shows their history from the
// ledger; with wait, it reloads until that request's result is there.
func (c *Console) userPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := userData{Email: strings.TrimSpace(q.Get("email")), Wait: strings.TrimSpace(q.Get("wait"))}
	c.renderUser(w, r, http.StatusOK, d, "")
}

func (c *Console) renderUser(w http.ResponseWriter, r *http.Request, status int, d userData, notice string) {
	p := page{Title: "User", Nav: "user", Notice: notice}
	if d.Email != "" && d.Problem == "" {
		if err := checkEmail(d.Email); err != nil {
			d.Problem, status = err.Error(), http.StatusBadRequest
		} else {
			v, err := ledger.Show(r.Context(), c.cfg.JS, c.cfg.Topology, d.Email)
			switch {
			case errors.Is(err, ledger.ErrNoLedger):
				d.Err, status = "The ledger's bucket does not exist on this server.", http.StatusBadGateway
			case err != nil:
				d.Err, status = err.Error(), http.StatusBadGateway
			default:
				d.View = &v
				for _, q := range v.Requests {
					if q.RequestID == d.Wait {
						d.Found = true
					}
				}
				if d.Wait != "" && !d.Found {
					p.Refresh = 2
				}
			}
		}
	}
	p.Data = d
	c.render(w, r, status, "user", p)
}

// userForget erases a person, once their address is typed again.
func (c *Console) userForget(w http.ResponseWriter, r *http.Request) {
	email := strings.TrimSpace(r.PostFormValue("email"))
	d := userData{Email: email}
	switch {
	case checkEmail(email) != nil:
		d.ForgetProblem = "Want the person's address: nothing was erased."
	case !strings.EqualFold(strings.TrimSpace(r.PostFormValue("confirm")), email):
		d.ForgetProblem = "Type the address again to confirm: nothing was erased."
	case strings.TrimSpace(r.PostFormValue("reason")) == "":
		d.ForgetProblem = "Give a reason (the erasure request's reference): it is recorded in the audit event. Nothing was erased."
	}
	if d.ForgetProblem != "" {
		c.renderUser(w, r, http.StatusBadRequest, d, "")
		return
	}
	actor := sessionOf(r).tok.name
	rep, err := ledger.Forget(r.Context(), c.cfg.JS, c.cfg.Topology, email, actor, strings.TrimSpace(r.PostFormValue("reason")), c.cfg.Now())
	if err != nil {
		d.Err = err.Error()
		c.renderUser(w, r, http.StatusBadGateway, d, "")
		return
	}
	c.cfg.Logger.Info().Str("actor", actor).Str("key", rep.Key).Msg("console: person forgotten")
	c.renderUser(w, r, http.StatusOK, d, fmt.Sprintf("Forgotten: the ledger entry, %s and %s were erased, and recorded as %s's action.",
		plural(rep.Results, "result event"), plural(rep.DeadLetters, "dead letter"), actor))
}
