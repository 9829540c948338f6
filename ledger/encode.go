package ledger

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"
	"time"
)

// A hand-written encoder for the record tail of payment entries, the bulk
// of the ledger, which encoding/json spent ~9 µs per webhook on (reflection,
// the sorted map of sealed fields). It writes exactly what json.Marshal
// writes — tests and a fuzzer compare the two — and hands anything it does
// not write byte for byte (strings needing escapes, times json.Marshal
// refuses) back to encoding/json.

// appendRecordTail appends `,"kind":...}` for rec when its body is a
// payment body, and reports false for any other body.
func appendRecordTail(b []byte, rec *Record) ([]byte, bool) {
	p, ok := paymentOf(rec.Body)
	if !ok {
		return b, false
	}
	b = append(b, `,"kind":`...)
	b = appendJSONString(b, string(rec.Kind))
	b = append(b, `,"id":`...)
	b = appendJSONString(b, rec.ID)
	b = append(b, `,"time":`...)
	if b, ok = appendJSONTime(b, rec.Time.UTC()); !ok {
		return b, false
	}
	b = append(b, `,"policy":`...)
	b = strconv.AppendInt(b, int64(rec.Policy), 10)
	b = append(b, `,"body":`...)
	if b, ok = appendPaymentJSON(b, p); !ok {
		return b, false
	}
	if u := rec.Unique; u != nil {
		b = append(b, `,"unique":{"key":`...)
		b = appendJSONString(b, u.Key)
		b = append(b, `,"digest":`...)
		b = appendJSONBytes(b, u.Digest)
		b = append(b, '}')
	}
	return append(b, '}'), true
}

// appendPaymentJSON appends json.Marshal(p).
func appendPaymentJSON(b []byte, p *PaymentBody) ([]byte, bool) {
	b = append(b, `{"source":`...)
	b = appendJSONString(b, p.Source)
	b = append(b, `,"event_id":`...)
	b = appendJSONString(b, p.EventID)
	if p.WebhookID != "" {
		b = append(b, `,"webhook_id":`...)
		b = appendJSONString(b, p.WebhookID)
	}
	b = append(b, `,"type":`...)
	b = appendJSONString(b, p.Type)
	b = append(b, `,"processor_type":`...)
	b = appendJSONString(b, p.ProcessorType)
	b = append(b, `,"transaction_id":`...)
	b = appendJSONString(b, p.TransactionID)
	if len(p.AltIDs) > 0 {
		b = append(b, `,"alt_ids":`...)
		b = appendJSONStrings(b, p.AltIDs)
	}
	b = append(b, `,"merchant_id":`...)
	b = appendJSONString(b, p.MerchantID)
	b = append(b, `,"amount":`...)
	b = strconv.AppendInt(b, p.Amount, 10)
	b = append(b, `,"currency":`...)
	b = appendJSONString(b, p.Currency)
	b = append(b, `,"status":`...)
	b = appendJSONString(b, p.Status)
	b = append(b, `,"occurred_at":`...)
	b, ok := appendJSONTime(b, p.OccurredAt)
	if !ok {
		return b, false
	}
	if p.Brand != "" {
		b = append(b, `,"brand":`...)
		b = appendJSONString(b, p.Brand)
	}
	b = append(b, `,"sad_removed":`...)
	b = strconv.AppendBool(b, p.SADRemoved)
	if p.DataKey != "" {
		b = append(b, `,"data_key":`...)
		b = appendJSONString(b, p.DataKey)
	}
	if len(p.Sealed) > 0 {
		b = append(b, `,"sealed":{`...)
		fields := make([]string, 0, len(p.Sealed))
		for f := range p.Sealed {
			fields = append(fields, f)
		}
		slices.Sort(fields)
		for i, f := range fields {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, f)
			b = append(b, ':')
			b = appendJSONBytes(b, p.Sealed[f])
		}
		b = append(b, '}')
	}
	return append(b, '}'), true
}

// appendJSONString appends s as encoding/json quotes it. Strings of plain
// printable ASCII are copied; the rest go through encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendJSONBytes appends v as encoding/json writes a []byte: base64, or
// null for nil.
func appendJSONBytes(b []byte, v []byte) []byte {
	if v == nil {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, v)
	return append(b, '"')
}

// appendJSONTime appends t as time.Time.MarshalJSON does; false when
// MarshalJSON would fail.
func appendJSONTime(b []byte, t time.Time) ([]byte, bool) {
	q, err := t.MarshalJSON()
	return append(b, q...), err == nil
}

// marshalTxState returns json.Marshal(s), the stored form of a transaction
// state row, written by hand for the appender (one per payment event).
func marshalTxState(s *TxState) ([]byte, error) {
	b := make([]byte, 0, 1024) // about 450 bytes, 800 with a card copy
	b = append(b, `{"transaction_id":`...)
	b = appendJSONString(b, s.TransactionID)
	if len(s.AltIDs) > 0 {
		b = append(b, `,"alt_ids":`...)
		b = appendJSONStrings(b, s.AltIDs)
	}
	b = append(b, `,"merchant_id":`...)
	b = appendJSONString(b, s.MerchantID)
	b = append(b, `,"status":`...)
	b = appendJSONString(b, s.Status)
	b = append(b, `,"currency":`...)
	b = appendJSONString(b, s.Currency)
	for _, a := range [...]struct {
		name string
		v    int64
	}{{`,"amount_authorized":`, s.Authorized}, {`,"amount_captured":`, s.Captured}, {`,"amount_refunded":`, s.Refunded}, {`,"amount_charged_back":`, s.ChargedBack}} {
		b = append(b, a.name...)
		b = strconv.AppendInt(b, a.v, 10)
	}
	ok := true
	for _, t := range [...]struct {
		name      string
		v         time.Time
		omitEmpty bool
	}{{`,"first_seen":`, s.FirstSeen, false}, {`,"last_updated":`, s.LastUpdated, false}, {`,"captured_at":`, s.CapturedAt, true}, {`,"status_at":`, s.StatusAt, true}} {
		if t.omitEmpty && t.v.IsZero() {
			continue
		}
		b = append(b, t.name...)
		var tok bool
		b, tok = appendJSONTime(b, t.v)
		ok = ok && tok
	}
	if !ok {
		return json.Marshal(s) // for its error
	}
	b = append(b, `,"types":`...)
	b = appendJSONStrings(b, s.Types)
	b = append(b, `,"seqs":`...)
	if s.Seqs == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, seq := range s.Seqs {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendUint(b, seq, 10)
		}
		b = append(b, ']')
	}
	if s.CardSeq != nil {
		b = append(b, `,"card_seq":`...)
		b = strconv.AppendUint(b, *s.CardSeq, 10)
	}
	if s.Card != nil {
		b = append(b, `,"card":`...)
		b = appendCardCopy(b, s.Card)
	}
	return append(b, '}'), nil
}

// appendCardCopy appends json.Marshal(c), the stored form of a card copy
// (whose digest an 'e' row holds).
func appendCardCopy(b []byte, c *CardCopy) []byte {
	return appendCardCopyOf(b, c.Entry, c.Brand, c.DataKey, [...][]byte{c.Sealed.BIN, c.Sealed.Token, c.Sealed.Last4}, appendJSONBytes)
}

// appendCardCopyOf appends the stored form of a card copy from its parts:
// the sealed card fields in the order of cardFields, nil where absent,
// each appended by value: appendJSONBytes for ciphertexts, appendQuoted
// for their base64 text as an entry holds it (verify's fast path).
func appendCardCopyOf(b []byte, entry, brand, dataKey string, sealed [len(cardFields)][]byte, value func(b, v []byte) []byte) []byte {
	b = append(b, `{"entry":`...)
	b = appendJSONString(b, entry)
	b = append(b, `,"brand":`...)
	b = appendJSONString(b, brand)
	b = append(b, `,"data_key":`...)
	b = appendJSONString(b, dataKey)
	b = append(b, `,"sealed":{`...)
	sep := false
	for i, v := range sealed {
		if v == nil {
			continue
		}
		if sep {
			b = append(b, ',')
		}
		sep = true
		b = append(b, '"')
		b = append(b, cardFields[i]...)
		b = append(b, `":`...)
		b = value(b, v)
	}
	return append(b, "}}"...)
}

// appendQuoted appends s, which needs no escaping, as a JSON string.
func appendQuoted(b, s []byte) []byte {
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendJSONStrings appends a []string as encoding/json does (nil: null).
func appendJSONStrings(b []byte, list []string) []byte {
	if list == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}
