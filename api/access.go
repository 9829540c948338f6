package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/paytrail/paytrail/api/auth"
	"github.com/paytrail/paytrail/ledger"
)

const principalKey = "paytrail.principal"

// principal returns the authenticated caller set by authorize.
func principal(c *gin.Context) *auth.Principal {
	p, _ := c.Get(principalKey)
	pr, _ := p.(*auth.Principal)
	return pr
}

// access describes one access for the access log.
type access struct {
	Action string
	// Resource names what was read or attempted. It may hold caller input
	// (path parameters, filters), so card numbers in it are redacted.
	Resource string
	// Returned, if set, is appended to Resource as written: server-made
	// text (counts, sequence numbers) that redaction would mistake for card
	// numbers. It must start with a space and a word, so that no digits of
	// Resource run into its own.
	Returned      string
	Merchants     []string
	Purpose       string
	Justification string
}

// recordAccess durably appends an access entry (PCI DSS 10.2.2: who, what
// kind, when, success or failure, origin, which data) and returns its
// sequence number. Handlers call it before sending data, and send nothing if
// it fails.
func (s *Server) recordAccess(c *gin.Context, a access, status int) (uint64, error) {
	p := principal(c)
	body := ledger.AccessBody{
		Action:    a.Action,
		Resource:  redactPANs(a.Resource) + a.Returned,
		Merchants: a.Merchants,
		Purpose:   a.Purpose,
		Reason:    redactPANs(a.Justification),
		Result:    "success",
		Status:    status,
		OriginIP:  c.ClientIP(),
	}
	if status >= 400 {
		body.Result = "failure"
	}
	if p != nil {
		body.ActorID, body.ActorName, body.Role = p.ID, p.Name, string(p.Role)
	} else {
		body.ActorID, body.ActorName = "anonymous", "unauthenticated caller"
	}
	res, err := s.appender.Append(c, ledger.Record{
		Kind: ledger.KindAccess, ID: ledger.NewRecordID(), Time: s.now(), Policy: PolicyVersion, Body: body,
	})
	if err != nil {
		s.log.Error("failed to record access; refusing to answer", "action", a.Action, "err", err)
		return 0, errUnavailable
	}
	return res.Seq, nil
}

// deny records a denied attempt, then answers with err. If the denial
// cannot be recorded the caller still gets no data.
func (s *Server) deny(c *gin.Context, a access, err error) {
	e := toError(err)
	if _, rerr := s.recordAccess(c, a, e.Status); rerr != nil {
		s.abort(c, rerr)
		return
	}
	s.abort(c, e)
}

// authorize authenticates the caller and checks its role. Failures are
// access entries (401, 403) before the answer; a flood of 401s from one
// origin is coalesced (see denials).
func (s *Server) authorize(action string, roles ...auth.Role) gin.HandlerFunc {
	return func(c *gin.Context) {
		a := access{Action: action, Resource: requestResource(c)}
		p, err := s.auth.Authenticate(c, c.Request)
		if err != nil {
			if toError(err).Status != http.StatusUnauthorized {
				s.abort(c, err)
				return
			}
			if !s.denials.admit(c.ClientIP(), action, a.Resource, s.now()) {
				// Counted, to be recorded with the others of its window.
				s.abort(c, errUnauthenticated)
				return
			}
			s.deny(c, a, errUnauthenticated)
			return
		}
		markAuthenticated(c)
		c.Set(principalKey, p)
		for _, r := range roles {
			if p.Role == r {
				c.Next()
				return
			}
		}
		s.deny(c, a, errForbidden)
	}
}

// scopeFilter returns the merchants a list query may read: the requested
// one if given and in scope, or the caller's scope. ok is false when the
// request names a merchant outside the scope (the answer is then an empty
// list, not an error).
func scopeFilter(p *auth.Principal, requested string) (merchants []string, all bool, ok bool) {
	if requested != "" {
		if !p.InScope(requested) {
			return nil, false, false
		}
		return []string{requested}, false, true
	}
	if p.AllMerchants() {
		return nil, true, true
	}
	return p.Merchants, false, true
}

// requestResource names the request for a denial: the route template with
// its parameters filled in (recordAccess redacts any card number a caller
// put there). Query strings are left out: they are the caller's to fill.
// The method is named from the fixed set of the metrics labels, never as
// sent.
func requestResource(c *gin.Context) string {
	method := methodLabel(c.Request.Method)
	path := c.FullPath()
	if path == "" {
		return method + " (unmatched route)"
	}
	for _, p := range c.Params {
		path = strings.Replace(path, ":"+p.Key, p.Value, 1)
	}
	return method + " " + path
}

// otherOrigins is the origin_ip of a coalesced entry counting attempts
// from origins beyond Config.MaxDenialOrigins.
const otherOrigins = "(other origins)"

// denials coalesces floods of failed authentication attempts. PCI DSS
// 10.2.1.4 asks that every invalid access attempt be recorded, not that
// each be a ledger entry of its own, and a synced entry per 401 lets a
// stranger grow the ledger (and use its disk bandwidth) at the rate they
// send. So, per origin and action, the first Config.DenialBurst attempts of
// each Config.DenialWindow are recorded as today, one entry each before the
// answer; later ones are counted, answered 401 at once, and recorded as one
// entry when the window ends, carrying the count (see coalescedNote). The
// ledger then grows with time, never with the attacker's rate. Close
// records what is still counted; nothing counted is lost at shutdown.
//
// Origins are tracked up to Config.MaxDenialOrigins at once; attempts from
// further origins are counted under otherOrigins, so that a stranger with
// many addresses cannot grow the map either.
type denials struct {
	window, timeout time.Duration
	burst, max      int
	// record appends the entry of a window's counted attempts.
	record func(ctx context.Context, w denialCount) error

	mu       sync.Mutex
	open     map[denialKey]*denialWindow
	closed   bool
	inflight sync.WaitGroup // records started by window timers
}

type denialKey struct{ origin, action string }

// denialWindow is one origin's and action's current window.
type denialWindow struct {
	key      denialKey
	recorded int // attempts recorded as entries of their own
	count    denialCount
	timer    *time.Timer
}

// denialCount is the attempts of a window that were counted, not recorded:
// their number, the resource of the first, and when the first and last
// came.
type denialCount struct {
	origin, action, resource string
	n                        int
	first, last              time.Time
}

func newDenials(window time.Duration, burst, max int, record func(context.Context, denialCount) error) *denials {
	return &denials{
		window: window, timeout: 10 * time.Second, burst: burst, max: max,
		record: record, open: map[denialKey]*denialWindow{},
	}
}

// admit reports whether the attempt is to be recorded now, as an entry of
// its own; if not, it has been counted.
func (d *denials) admit(origin, action, resource string, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return true
	}
	k := denialKey{origin, action}
	w := d.open[k]
	if w == nil && len(d.open) >= d.max {
		k.origin = otherOrigins
		w = d.open[k]
	}
	if w == nil {
		w = &denialWindow{key: k}
		d.open[k] = w
		w.timer = time.AfterFunc(d.window, func() { d.expire(w) })
	}
	if w.recorded < d.burst && k.origin != otherOrigins {
		w.recorded++
		return true
	}
	if w.count.n == 0 {
		w.count = denialCount{origin: k.origin, action: action, resource: resource, first: now}
	}
	w.count.n++
	w.count.last = now
	return false
}

// expire ends w's window and records what it counted.
func (d *denials) expire(w *denialWindow) {
	d.mu.Lock()
	if d.closed || d.open[w.key] != w {
		d.mu.Unlock()
		return
	}
	delete(d.open, w.key)
	n := w.count
	if n.n == 0 {
		d.mu.Unlock()
		return
	}
	d.inflight.Add(1)
	d.mu.Unlock()
	defer d.inflight.Done()
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
	defer cancel()
	_ = d.record(ctx, n) // record logs its failure
}

// close records every window's counted attempts and waits for those the
// timers are recording. Attempts after it are recorded one entry each.
func (d *denials) close(ctx context.Context) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	var pending []denialCount
	for _, w := range d.open {
		w.timer.Stop()
		if w.count.n > 0 {
			pending = append(pending, w.count)
		}
	}
	d.open = nil
	d.mu.Unlock()
	var errs []error
	for _, n := range pending {
		errs = append(errs, d.record(ctx, n))
	}
	d.inflight.Wait()
	return errors.Join(errs...)
}

// coalescedNote is appended, unredacted (see access.Returned), to the
// resource of a coalesced entry: how many failed attempts the entry
// stands for, the first of which named the resource, and when the first
// and the last came.
func coalescedNote(n denialCount) string {
	return " (first of " + strconv.Itoa(n.n) + " failed attempts coalesced, " +
		n.first.Format(time.RFC3339Nano) + " to " + n.last.Format(time.RFC3339Nano) + ")"
}

// recordCoalesced durably appends the entry of a window's counted
// attempts. A failure is logged with the count, the only trace left of
// those attempts.
func (s *Server) recordCoalesced(ctx context.Context, n denialCount) error {
	body := ledger.AccessBody{
		ActorID: "anonymous", ActorName: "unauthenticated caller",
		Action: n.action, Resource: redactPANs(n.resource) + coalescedNote(n),
		Result: "failure", Status: http.StatusUnauthorized, OriginIP: n.origin,
	}
	_, err := s.appender.Append(ctx, ledger.Record{
		Kind: ledger.KindAccess, ID: ledger.NewRecordID(), Time: s.now(), Policy: PolicyVersion, Body: body,
	})
	if err != nil {
		s.log.Error("failed to record coalesced failed attempts", "action", n.action, "origin_ip", n.origin, "attempts", n.n, "err", err)
		return err
	}
	s.metrics.coalescedDenials.Add(float64(n.n))
	return nil
}
