package reconcile

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/zoomprov/consumer/internal/ledger"
	"github.com/zoomprov/consumer/internal/retry"
	"github.com/zoomprov/consumer/internal/zoom"
)

// Lister is what a scan needs of Zoom: one page of a listing of users.
// *zoom.Client has it.
type Lister interface {
	ListUsers(ctx context.Context, status string, pageSize int, pageToken string) (zoom.UserPage, error)
}

var _ Lister = (*zoom.Client)(nil)

// Ledger is what a scan needs of the per-user ledger. *ledger.Ledger has
// it.
type Ledger interface {
	Get(ctx context.Context, email string) (ledger.Record, error)
	Entry(ctx context.Context, key string) (ledger.Record, error)
	EachKey(ctx context.Context, fn func(key string) error) error
}

var _ Ledger = (*ledger.Ledger)(nil)

// Statuses are the listings a scan walks, in order: Zoom lists one status
// at a time (active by default).
var Statuses = []string{zoom.UserActive, zoom.UserInactive, zoom.UserPending}

// Config configures a scan. Zoom and Ledger are required; zero values of
// the others mean the documented defaults.
type Config struct {
	Zoom   Lister
	Ledger Ledger
	// Limiter paces the listing: it is waited on before each page, with
	// zoom.Call{Op: "list users", Label: zoom.LabelMedium}. Nil: no
	// pacing (tests only: Zoom counts every call of the account).
	Limiter zoom.Limiter
	// SlowDown, if not nil, is told of each per-second 429 (the pacer's
	// adaptive slow-down).
	SlowDown func(now time.Time)
	// PageSize is the page size asked for; zero means zoom.DefaultPageSize
	// (300). Zoom may serve another, which is accepted.
	PageSize int
	// Readers is how many ledger entries are read at once; zero means 16.
	Readers int
	// KeepDrift and KeepUnmanaged bound the entries a Report keeps (the
	// first ones found); zero keeps them all. Counts always count all.
	KeepDrift, KeepUnmanaged int
	// Progress, if not nil, is called after each page.
	Progress func(Progress)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Progress is how far a scan has come.
type Progress struct {
	// Status is the listing being walked, Listed the users listed so far
	// (all listings), Calls the listing calls made.
	Status        string
	Listed, Calls int
}

// Report is what a scan found. Its JSON is the contract of `consumer
// reconcile --json` (with "published" added by --apply).
type Report struct {
	// Scanned counts the users Zoom listed (each once).
	Scanned int `json:"scanned"`
	// Managed counts the users the ledger expects something of: listed by
	// Zoom or not (missing, or deleted as expected).
	Managed int `json:"managed"`
	// InSync counts the managed users without drift.
	InSync int `json:"in_sync"`
	// Drift lists the differences found, by kind (Kinds order), then
	// email; a user may have two (status and fields).
	Drift []Drift `json:"drift"`
	// Unmanaged lists the users Zoom has of whom the ledger expects
	// nothing, by email.
	Unmanaged []Unmanaged `json:"unmanaged"`

	// Counts counts the users of each kind of drift, and the unmanaged
	// users (KindUnmanaged), all of them even when the lists keep only the
	// first ones.
	Counts map[Kind]int `json:"-"`
	// Changed counts the managed users whose ledger entry changed during
	// the scan: the service acted on them meanwhile, so Zoom's page and
	// the entry may describe different moments; they count as in sync.
	Changed int `json:"-"`
	// Calls counts the listing calls (retries included), Restarts the
	// listings started again because a page token expired.
	Calls, Restarts int `json:"-"`
	// Started and Finished bound the scan.
	Started, Finished time.Time `json:"-"`
}

// DriftUsers counts the users with at least one drift.
func (r Report) DriftUsers() int { return r.Managed - r.InSync }

// Retry limits of one page.
const (
	// maxPageAttempts bounds the tries of one page that fail transiently
	// (5xx, time-outs, connection errors) or meet a per-second 429.
	maxPageAttempts = 8
	// maxRestarts bounds how often one status's listing starts again
	// because its page token expired.
	maxRestarts = 3
)

// pageBackoff spaces the tries of a page after a transient failure.
var pageBackoff = retry.Schedule{Initial: 500 * time.Millisecond, Max: 10 * time.Second, Jitter: 0.2}

// ErrDailyLimit is matched by the error of a scan that met one of Zoom's
// daily limits (the Free plan's Medium cap): it can only go on tomorrow.
var ErrDailyLimit = errors.New("reconcile: Zoom's daily limit for listing users is reached")

// Scan lists every user of Zoom (every page of the active, inactive and
// pending listings) and compares each, as its page arrives, with the
// ledger; then it reads the ledger's entries of the users Zoom did not
// list. It calls no Zoom endpoint but GET /users.
//
// Memory stays bounded by a page of users and a set of 16-byte keys of
// the users seen (plus the entries kept, see Config.KeepDrift): the users
// themselves are never held. A page whose token expired (Zoom keeps one
// for 15 minutes) starts its status's listing again; users already seen
// are skipped. Transient failures and per-second 429s are retried.
func Scan(ctx context.Context, cfg Config) (Report, error) {
	if cfg.Zoom == nil || cfg.Ledger == nil {
		return Report{}, errors.New("reconcile: scan without Zoom or ledger")
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = zoom.DefaultPageSize
	}
	if cfg.Readers <= 0 {
		cfg.Readers = 16
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &scan{cfg: cfg, seen: map[[16]byte]struct{}{}}
	s.rep = Report{Drift: []Drift{}, Unmanaged: []Unmanaged{}, Counts: map[Kind]int{}, Started: cfg.Now()}
	for _, k := range GaugeKinds {
		s.rep.Counts[k] = 0
	}
	for _, status := range Statuses {
		if err := s.walk(ctx, status); err != nil {
			return s.rep, err
		}
	}
	if err := s.missing(ctx); err != nil {
		return s.rep, err
	}
	s.rep.Finished = cfg.Now()
	slices.SortStableFunc(s.rep.Drift, func(a, b Drift) int {
		if c := slices.Index(Kinds, a.Kind) - slices.Index(Kinds, b.Kind); c != 0 {
			return c
		}
		return strings.Compare(a.Email, b.Email)
	})
	slices.SortStableFunc(s.rep.Unmanaged, func(a, b Unmanaged) int { return strings.Compare(a.Email, b.Email) })
	return s.rep, nil
}

// scan is one Scan's state.
type scan struct {
	cfg Config
	rep Report
	// seen holds the keys (ledger.Key, decoded) of the users listed.
	seen map[[16]byte]struct{}
}

// walk lists every page of status and compares its users.
func (s *scan) walk(ctx context.Context, status string) error {
	token := ""
	for restarts := 0; ; {
		page, err := s.page(ctx, status, token)
		if errors.Is(err, zoom.ErrPageTokenExpired) && restarts < maxRestarts {
			// Zoom's page tokens last 15 minutes: start this listing
			// again; the users already seen are skipped.
			restarts++
			s.rep.Restarts++
			token = ""
			continue
		}
		if err != nil {
			return fmt.Errorf("reconcile: list %s users: %w", status, err)
		}
		if err := s.compare(ctx, status, page.Users); err != nil {
			return err
		}
		if s.cfg.Progress != nil {
			s.cfg.Progress(Progress{Status: status, Listed: s.rep.Scanned, Calls: s.rep.Calls})
		}
		switch page.NextPageToken {
		case "":
			return nil
		case token:
			return fmt.Errorf("reconcile: list %s users: the next page token did not change", status)
		}
		token = page.NextPageToken
	}
}

// page fetches one page, paced, retrying transient failures and
// per-second 429s.
func (s *scan) page(ctx context.Context, status, token string) (zoom.UserPage, error) {
	for attempt := 1; ; attempt++ {
		if s.cfg.Limiter != nil {
			if err := s.cfg.Limiter.Wait(ctx, zoom.Call{Op: "list users", Label: zoom.LabelMedium}); err != nil {
				return zoom.UserPage{}, fmt.Errorf("wait for the pacer: %w", err)
			}
		}
		s.rep.Calls++
		page, err := s.cfg.Zoom.ListUsers(ctx, status, s.cfg.PageSize, token)
		if err == nil {
			return page, nil
		}
		if ctx.Err() != nil {
			return zoom.UserPage{}, ctx.Err()
		}
		wait, ok := s.retryable(err)
		if !ok || attempt >= maxPageAttempts {
			return zoom.UserPage{}, err
		}
		if wait <= 0 {
			wait = pageBackoff.Delay(attempt)
		}
		retry.Sleep(ctx, wait, nil)
	}
}

// retryable says whether a failed page may be asked for again, and after
// how long (zero: the backoff's).
func (s *scan) retryable(err error) (time.Duration, bool) {
	if errors.Is(err, zoom.ErrPageTokenExpired) {
		return 0, false
	}
	var tokErr *zoom.TokenError
	if errors.As(err, &tokErr) {
		return 0, false // the credentials: retrying cannot help
	}
	var apiErr *zoom.APIError
	if !errors.As(err, &apiErr) {
		return 0, true // no answer: time-out, refused or reset connection
	}
	switch {
	case apiErr.StatusCode == http.StatusTooManyRequests:
		now := s.cfg.Now()
		if apiErr.Limit() == zoom.LimitDaily {
			return 0, false
		}
		if apiErr.Limit() == zoom.LimitPerSecond && s.cfg.SlowDown != nil {
			s.cfg.SlowDown(now)
		}
		if at := apiErr.ResetAt(now); at.After(now) {
			return min(at.Sub(now), time.Minute), true
		}
		return time.Second, true
	case apiErr.StatusCode >= 500, apiErr.StatusCode == http.StatusRequestTimeout:
		return 0, true
	}
	return 0, false
}

// looked is one listed user with their ledger entry.
type looked struct {
	user zoom.User
	rec  ledger.Record
}

// compare compares the users of one page with their ledger entries: the
// entries are read Readers at a time, the verdicts taken in page order.
func (s *scan) compare(ctx context.Context, status string, users []zoom.User) error {
	fresh := make([]looked, 0, len(users))
	for _, u := range users {
		k, ok := keyOf(ledger.Key(u.Email))
		if u.Email == "" || !ok {
			continue
		}
		if _, dup := s.seen[k]; dup {
			continue // listed before: a restarted listing, or a status changed between listings
		}
		s.seen[k] = struct{}{}
		if u.Status == "" {
			u.Status = status
		}
		fresh = append(fresh, looked{user: u})
	}
	s.rep.Scanned += len(fresh)
	err := s.read(ctx, len(fresh), func(ctx context.Context, i int) (err error) {
		fresh[i].rec, err = s.cfg.Ledger.Get(ctx, fresh[i].user.Email)
		return err
	})
	if err != nil {
		return err
	}
	for _, l := range fresh {
		if _, managed := Expected(l.rec); !managed {
			s.unmanaged(Unmanaged{Email: l.user.Email, Status: l.user.Status, ZoomUserID: l.user.ID})
			continue
		}
		s.managed(l.rec, Compare(l.user, l.rec))
	}
	return nil
}

// missing reads the ledger's entries of the users Zoom did not list: a
// managed user among them is missing, unless the ledger expects them
// deleted. The keys are listed first (only those not seen are kept), the
// entries read afterwards, so that the listing is never held up.
func (s *scan) missing(ctx context.Context) error {
	var keys []string
	err := s.cfg.Ledger.EachKey(ctx, func(key string) error {
		k, ok := keyOf(key)
		if !ok {
			return nil // not a user's entry
		}
		if _, seen := s.seen[k]; !seen {
			s.seen[k] = struct{}{} // a key listed twice is read once
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reconcile: list the ledger's keys: %w", err)
	}
	const batch = 256
	for len(keys) > 0 {
		n := min(batch, len(keys))
		recs := make([]ledger.Record, n)
		if err := s.read(ctx, n, func(ctx context.Context, i int) (err error) {
			recs[i], err = s.cfg.Ledger.Entry(ctx, keys[i])
			return err
		}); err != nil {
			return err
		}
		for _, rec := range recs {
			if _, managed := Expected(rec); !managed {
				continue // never created, or erased: nothing to expect
			}
			var ds []Drift
			if d := Missing(rec); d != nil {
				ds = []Drift{*d}
			}
			s.managed(rec, ds)
		}
		keys = keys[n:]
	}
	return nil
}

// managed counts a managed user with the drift found about them.
func (s *scan) managed(rec ledger.Record, ds []Drift) {
	s.rep.Managed++
	if len(ds) == 0 {
		s.rep.InSync++
		return
	}
	if rec.Updated.After(s.rep.Started) {
		// The service applied a result about them during the scan: Zoom's
		// page may predate it. The next scan tells.
		s.rep.Changed++
		s.rep.InSync++
		return
	}
	for _, d := range ds {
		s.rep.Counts[d.Kind]++
		if s.cfg.KeepDrift == 0 || len(s.rep.Drift) < s.cfg.KeepDrift {
			s.rep.Drift = append(s.rep.Drift, d)
		}
	}
}

func (s *scan) unmanaged(u Unmanaged) {
	s.rep.Counts[KindUnmanaged]++
	if s.cfg.KeepUnmanaged == 0 || len(s.rep.Unmanaged) < s.cfg.KeepUnmanaged {
		s.rep.Unmanaged = append(s.rep.Unmanaged, u)
	}
}

// read calls get for 0 … n-1, Readers at a time, and returns the first
// error; every call has returned when it does.
func (s *scan) read(ctx context.Context, n int, get func(ctx context.Context, i int) error) error {
	if n == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range min(s.cfg.Readers, n) {
		wg.Go(func() {
			for i := range next {
				if err := get(ctx, i); err != nil {
					once.Do(func() { first = fmt.Errorf("reconcile: read the ledger: %w", err); cancel() })
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// keyOf decodes a ledger key (32 hex digits) into the set's form.
func keyOf(key string) ([16]byte, bool) {
	var k [16]byte
	if len(key) != 2*len(k) {
		return k, false
	}
	_, err := hex.Decode(k[:], []byte(key))
	return k, err == nil
}
