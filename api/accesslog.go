package api

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/paytrail/paytrail/api/auth"
	"github.com/paytrail/paytrail/ledger"
)

// accessView is one access record (docs/openapi.yaml, AccessRecord).
type accessView struct {
	Seq           uint64    `json:"seq"`
	Time          time.Time `json:"time"`
	ActorID       string    `json:"actor_id"`
	ActorName     string    `json:"actor_name"`
	Role          string    `json:"role"`
	Action        string    `json:"action"`
	Resource      string    `json:"resource"`
	Merchants     []string  `json:"merchants,omitempty"`
	Purpose       string    `json:"purpose"`
	Justification string    `json:"justification,omitempty"`
	Result        string    `json:"result"`
	Status        int       `json:"status"`
	OriginIP      string    `json:"origin_ip"`
}

var errAccessLogScope = newError(http.StatusForbidden, "forbidden", "reading the access log needs merchant scope *")

// accessLog answers GET /v1/access-log: access entries in time order,
// filtered by actor (principal id), from and to, one page at a time with
// the same authenticated cursors as the transaction list. It needs scope
// "*" (access entries span merchants). Reading it is itself an access
// entry, appended before the answer; it shows up in later pages and reads.
func (s *Server) accessLog(c *gin.Context) {
	a := access{Action: "access_log.read", Resource: "GET /v1/access-log"}
	if !principal(c).AllMerchants() {
		s.deny(c, a, errAccessLogScope)
		return
	}
	limit, err := parseLimit(c.Query("limit"))
	if err != nil {
		s.abort(c, err)
		return
	}
	q := ledger.AccessQuery{Limit: limit, ActorID: c.Query("actor")}
	if q.ActorID != "" && !auth.ValidID(q.ActorID) {
		s.abort(c, badRequest("invalid_parameter", "actor is not a valid principal id"))
		return
	}
	if q.From, err = parseViewTime(c.Query("from"), "from"); err != nil {
		s.abort(c, err)
		return
	}
	if q.To, err = parseViewTime(c.Query("to"), "to"); err != nil {
		s.abort(c, err)
		return
	}
	canon := url.Values{}
	if q.ActorID != "" {
		canon.Set("actor", q.ActorID)
	}
	if !q.From.IsZero() {
		canon.Set("from", strconv.FormatInt(q.From.UnixNano(), 10))
	}
	if !q.To.IsZero() {
		canon.Set("to", strconv.FormatInt(q.To.UnixNano(), 10))
	}
	if cur := c.Query("cursor"); cur != "" {
		pos, err := decodeCursor(s.keys, cursorAccessLog, canon.Encode(), cur)
		if err != nil || pos.ID != "" {
			s.abort(c, errInvalidCursor)
			return
		}
		q.After = &ledger.AccessPos{Time: time.Unix(0, pos.T).UTC(), Seq: pos.Seq}
	}
	if !s.ready(c) {
		return
	}
	page, err := s.ledger.AccessEntries(c, q)
	if err != nil {
		s.abort(c, err)
		return
	}
	items := make([]accessView, 0, len(page.Items))
	for _, r := range page.Items {
		b := r.Body
		items = append(items, accessView{
			Seq: r.Seq, Time: r.Time, ActorID: b.ActorID, ActorName: b.ActorName, Role: b.Role,
			Action: b.Action, Resource: b.Resource, Merchants: b.Merchants, Purpose: b.Purpose,
			Justification: b.Reason, Result: b.Result, Status: b.Status, OriginIP: b.OriginIP,
		})
	}
	next := ""
	if page.Next != nil {
		next = encodeCursor(s.keys, cursorAccessLog, canon.Encode(), cursorPos{T: page.Next.Time.UnixNano(), Seq: page.Next.Seq})
	}
	a.Resource, a.Returned = accessLogResource(&q), accessLogReturned(page.Items)
	if _, err := s.recordAccess(c, a, http.StatusOK); err != nil {
		s.abort(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"items": items, "next_cursor": next})
}

// accessLogResource describes an access log read: its filters, which hold
// caller input (recordAccess redacts them).
func accessLogResource(q *ledger.AccessQuery) string {
	var b strings.Builder
	b.WriteString("GET /v1/access-log")
	sep := "?"
	add := func(k, v string) {
		b.WriteString(sep + k + "=" + v)
		sep = "&"
	}
	if q.ActorID != "" {
		add("actor", q.ActorID)
	}
	if !q.From.IsZero() {
		add("from", q.From.Format(time.RFC3339Nano))
	}
	if !q.To.IsZero() {
		add("to", q.To.Format(time.RFC3339Nano))
	}
	if q.After != nil {
		add("cursor", "(next page)")
	}
	return b.String()
}

// accessLogReturned names the entries an access log read returned, by
// sequence number. It is not redacted (see access.Returned): a list of
// sequence numbers looks to the card number detector like digit groups,
// and it would redact the very record of what was read.
func accessLogReturned(items []ledger.AccessRecord) string {
	if len(items) == 0 {
		return " returned no entries"
	}
	var b strings.Builder
	b.WriteString(" returned " + strconv.Itoa(len(items)) + " entries: seq ")
	b.WriteString(strconv.FormatUint(items[0].Seq, 10))
	for _, r := range items[1:] {
		b.WriteString("," + strconv.FormatUint(r.Seq, 10))
	}
	return b.String()
}
