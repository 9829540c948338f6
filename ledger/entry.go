package ledger

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// FormatVersion is the version of the entry encoding written by this code.
const FormatVersion = 1

// Kind says what an entry records.
type Kind string

// The kinds of entry.
const (
	KindPayment        Kind = "payment"         // a processor's payment event
	KindAccess         Kind = "access"          // a read of ledger data, a disclosure or a denied attempt
	KindAdmin          Kind = "admin"           // principal and key management
	KindSecurity       Kind = "security"        // e.g. a webhook idempotency conflict
	KindSubjectRequest Kind = "subject_request" // a cardholder's correct/restrict/erase request
	KindReconciliation Kind = "reconciliation"  // a settlement reconciliation run
)

func (k Kind) valid() bool {
	switch k {
	case KindPayment, KindAccess, KindAdmin, KindSecurity, KindSubjectRequest, KindReconciliation:
		return true
	}
	return false
}

// Record is the appender's input: a self-contained description of one entry
// to append. Everything random or time-dependent is decided by the producer,
// so applying the same records in the same order always yields the same
// entries (see the package doc).
type Record struct {
	Kind Kind
	// ID is a unique random id chosen by the producer. Ciphertexts inside Body
	// are bound to it through their associated data.
	ID string
	// Time is when paytrail received the event or request.
	Time time.Time
	// Policy is the privacy policy version in force.
	Policy int
	// Body is the kind-specific JSON object (see body.go).
	Body any
	// Unique, if set, makes the append idempotent on Unique.Key.
	Unique *Unique
	// Link, on a payment record with personal data, indexes the event for
	// cardholder requests (subject rows; see subject.go).
	Link *SubjectLink
	// Erase, on a subject request record, erases transactions at the
	// record's place in the order (see [Erasure]).
	Erase *Erasure
	// State rows are mutable rows outside the tree (principals,
	// restrictions) written atomically with the entry; a nil Value deletes.
	State []StateRow

	// The fields below are for records of an ordered log ([Ledger.Submit])
	// only. A record with no Kind appends no entry: it writes its State
	// rows and does what Cut or Checkpoint say.

	// Entry is a stored entry of a ledger with the same history up to
	// here (the single-node ledger seeding a cluster), appended byte for
	// byte at its sequence number, which must be the next. Kind, ID,
	// Time, Policy, Body and Unique are taken from it.
	Entry []byte
	// Cut marks a checkpoint cut point: once the batch holding it is
	// durable, the ledger signs the checkpoint of the tree as of this
	// place in the log (see [Options].Sequenced).
	Cut bool
	// Checkpoint is a signed checkpoint note of the tree as of this place
	// (seeding), stored byte for byte once its size and root are checked.
	Checkpoint []byte
}

// StateRow is a mutable row in one of the ledger's state tables.
type StateRow struct {
	Table, Key string
	Value      []byte
	// AppendSeq appends the new entry's sequence number (8 bytes, big
	// endian) to the row's current value instead of writing Value, so a
	// row can list entries (e.g. [TableCorrections]).
	AppendSeq bool
}

// NewRecordID returns a random 128-bit record id, hex encoded, with no run
// of 13 or more decimal digits. Ids appear in request paths
// (/v1/reconciliations/{id}), which access entries record through the card
// number redactor; an id holding a Luhn-valid run (about one in 250 hex
// ids) would be recorded as "(redacted)" and no longer name its record.
func NewRecordID() string {
	for {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			panic("crypto/rand failed: " + err.Error())
		}
		if id := hex.EncodeToString(b[:]); longestDigitRun(id) < 13 {
			return id
		}
	}
}

// longestDigitRun returns the length of the longest run of ASCII digits
// in s.
func longestDigitRun(s string) int {
	longest, run := 0, 0
	for i := range len(s) {
		if s[i] >= '0' && s[i] <= '9' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return longest
}

// Unique is an idempotency key. A record whose key was already appended with
// the same Digest is a duplicate and appends nothing; with a different Digest
// it is a conflict ([ErrConflict]).
type Unique struct {
	Key    string `json:"key"`
	Digest []byte `json:"digest"`
}

// WrappedKey is a data key wrapped by the master key.
type WrappedKey struct {
	ID      string
	Wrapped []byte
}

// Entry is one stored ledger entry. Its fields are the decoded form of Bytes;
// construct entries only through the appender or [DecodeEntry], which keep the
// two consistent.
type Entry struct {
	Version int             `json:"v"`
	Seq     uint64          `json:"seq"`
	Kind    Kind            `json:"kind"`
	ID      string          `json:"id"`
	Time    time.Time       `json:"time"`
	Policy  int             `json:"policy"`
	Body    json.RawMessage `json:"body"`
	// Unique is the record's idempotency key, if any.
	Unique *Unique `json:"unique,omitempty"`

	bytes    []byte
	leafHash []byte
}

// Bytes returns the exact stored bytes the leaf hash covers. The caller must
// not modify them.
func (e *Entry) Bytes() []byte { return e.bytes }

// LeafHash returns SHA-256(0x00 || Bytes()).
func (e *Entry) LeafHash() []byte { return e.leafHash }

// DecodeBody unmarshals the entry's body into v.
func (e *Entry) DecodeBody(v any) error {
	if err := json.Unmarshal(e.Body, v); err != nil {
		return fmt.Errorf("failed to decode %s body of entry %d: %w", e.Kind, e.Seq, err)
	}
	return nil
}

// canonical returns rec with the values its index rows are made from in
// the form they take once encoded: invalid UTF-8 replaced as encoding/json
// replaces it (each bad byte by U+FFFD) and the payment time in UTC (an
// offset with seconds does not survive RFC 3339). Otherwise the rows written
// from the record would differ from the rows verify derives from the stored
// entry, and an honest ledger would fail verification.
func canonical(rec Record) Record {
	rec.ID = validUTF8(rec.ID)
	if u := rec.Unique; u != nil && !utf8.ValidString(u.Key) {
		c := *u
		c.Key = validUTF8(c.Key)
		rec.Unique = &c
	}
	if p, ok := paymentOf(rec.Body); ok && !canonicalPayment(p) {
		c := *p
		for _, f := range []*string{&c.Source, &c.EventID, &c.WebhookID, &c.Type, &c.ProcessorType, &c.TransactionID,
			&c.MerchantID, &c.Currency, &c.Status, &c.Brand, &c.DataKey} {
			*f = validUTF8(*f)
		}
		for i, id := range c.AltIDs {
			if !utf8.ValidString(id) {
				c.AltIDs = slices.Clone(c.AltIDs)
				c.AltIDs[i] = validUTF8(id)
			}
		}
		c.OccurredAt = c.OccurredAt.UTC()
		rec.Body = &c
	}
	return rec
}

// canonicalPayment reports whether p is already as canonical makes it (the
// common case, which then costs no copy).
func canonicalPayment(p *PaymentBody) bool {
	if p.OccurredAt.Location() != time.UTC {
		return false
	}
	for _, v := range [...]string{p.Source, p.EventID, p.WebhookID, p.Type, p.ProcessorType, p.TransactionID,
		p.MerchantID, p.Currency, p.Status, p.Brand, p.DataKey} {
		if !utf8.ValidString(v) {
			return false
		}
	}
	for _, id := range p.AltIDs {
		if !utf8.ValidString(id) {
			return false
		}
	}
	return true
}

// validUTF8 replaces each byte of s that is not part of valid UTF-8 by
// U+FFFD, as encoding/json does.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	b := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = utf8.AppendRune(b, utf8.RuneError)
		} else {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return string(b)
}

// encodedRecord is a record encoded up to its sequence number. Encoding runs
// in the caller's goroutine so the single appender only splices in the
// sequence number and hashes.
type encodedRecord struct {
	// buf is seqRoom free bytes, then everything after `{"v":1,"seq":N`,
	// ending with '}'. newEntry writes the start into the free bytes, so
	// an encodedRecord makes one entry.
	buf []byte
}

// seqRoom fits `{"v":1,"seq":` and any uint64.
const seqRoom = 40

// encodeRecord validates rec and encodes every field but the sequence
// number, in the field order of [Entry].
func encodeRecord(rec *Record) (encodedRecord, error) {
	if !rec.Kind.valid() {
		return encodedRecord{}, fmt.Errorf("failed to encode entry: unknown kind %q", rec.Kind)
	}
	if rec.ID == "" || rec.Time.IsZero() {
		return encodedRecord{}, errors.New("failed to encode entry: id and time are required")
	}
	if _, ok := paymentOf(rec.Body); ok {
		if b, ok := appendRecordTail(make([]byte, seqRoom, 2048), rec); ok {
			return encodedRecord{buf: b}, nil
		}
	}
	tail := struct {
		Kind   Kind      `json:"kind"`
		ID     string    `json:"id"`
		Time   time.Time `json:"time"`
		Policy int       `json:"policy"`
		Body   any       `json:"body"`
		Unique *Unique   `json:"unique,omitempty"`
	}{rec.Kind, rec.ID, rec.Time.UTC(), rec.Policy, rec.Body, rec.Unique}
	// An Encoder writes what json.Marshal returns, plus a newline, into a
	// reused buffer; the record gets one allocation of its exact size.
	buf := encodeBuffers.Get().(*bytes.Buffer)
	defer encodeBuffers.Put(buf)
	buf.Reset()
	if err := json.NewEncoder(buf).Encode(tail); err != nil {
		return encodedRecord{}, fmt.Errorf("failed to encode %s entry: %w", rec.Kind, err)
	}
	// buf is `{"kind":...}\n`; the entry is `{"v":1,"seq":N,"kind":...}`.
	js := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	b := append(make([]byte, seqRoom, seqRoom+len(js)), js...)
	b[seqRoom] = ','
	return encodedRecord{buf: b}, nil
}

var encodeBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// newEntry builds the entry with sequence number seq from an encoded
// record, in place.
func newEntry(seq uint64, enc encodedRecord) *Entry {
	var p [seqRoom]byte
	pre := append(p[:0], `{"v":`...)
	pre = strconv.AppendInt(pre, FormatVersion, 10)
	pre = append(pre, `,"seq":`...)
	pre = strconv.AppendUint(pre, seq, 10)
	b := enc.buf[seqRoom-len(pre):]
	copy(b, pre)
	return &Entry{Seq: seq, bytes: b, leafHash: hashLeaf(b)}
}

// DecodeEntry parses stored entry bytes. It fails with an error wrapping
// [ErrTampered] when the bytes are not a well-formed entry for seq.
func DecodeEntry(seq uint64, b []byte) (*Entry, error) {
	var e Entry
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&e); err != nil || d.More() {
		return nil, &TamperedError{Seq: seq, Reason: "entry bytes do not decode"}
	}
	if e.Seq != seq {
		return nil, &TamperedError{Seq: seq, Reason: fmt.Sprintf("entry stored at %d claims sequence number %d", seq, e.Seq)}
	}
	if e.Version != FormatVersion || !e.Kind.valid() {
		return nil, &TamperedError{Seq: seq, Reason: "unknown entry version or kind"}
	}
	e.bytes = b
	e.leafHash = hashLeaf(b)
	return &e, nil
}

func hashLeaf(b []byte) []byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(b)
	return h.Sum(nil)
}

func hashChildren(l, r []byte) []byte {
	h := sha256.New()
	h.Write([]byte{1})
	h.Write(l)
	h.Write(r)
	return h.Sum(nil)
}

// emptyRoot is the RFC 6962 root of an empty tree: SHA-256 of nothing.
var emptyRoot = func() []byte { s := sha256.Sum256(nil); return s[:] }()
