package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// referenceDecode is a slow, obviously correct decodeObject: a token walk
// that rejects a repeated key the moment it sees it.
func referenceDecode(body []byte) (map[string]any, error) {
	bad := errors.New("bad")
	if !utf8.Valid(body) || !json.Valid(body) {
		return nil, bad
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var value func(depth int) (any, error)
	value = func(depth int) (any, error) {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		switch tok {
		case json.Delim('{'):
			if depth+1 > maxDepth {
				return nil, bad
			}
			m := map[string]any{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				if _, dup := m[k.(string)]; dup {
					return nil, bad
				}
				if m[k.(string)], err = value(depth + 1); err != nil {
					return nil, err
				}
			}
			_, err := dec.Token()
			return m, err
		case json.Delim('['):
			if depth+1 > maxDepth {
				return nil, bad
			}
			a := []any{}
			for dec.More() {
				v, err := value(depth + 1)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			_, err := dec.Token()
			return a, err
		}
		return tok, nil
	}
	v, err := value(0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, bad
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, bad
	}
	return m, nil
}

// referenceDecodeError is the message decodeObject gives for body, or ""
// if it accepts it: the checks in the order decodeObject ranks them, each
// made on its own. It is the order the first decodeObject had, which
// validated with utf8.Valid and json.Valid before building the tree.
func referenceDecodeError(body []byte) string {
	const prefix = "failed to decode event: "
	if !utf8.Valid(body) {
		return prefix + "invalid UTF-8: malformed event"
	}
	if !json.Valid(body) {
		return prefix + "not a single JSON value: malformed event"
	}
	// Walk the whole body, as the checks are ranked, not met in order.
	tooDeep, dup := false, false
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var walk func(depth int)
	walk = func(depth int) {
		tok, err := dec.Token()
		if err != nil {
			panic(fmt.Sprintf("json.Valid accepted %q but Token fails: %v", body, err))
		}
		switch tok {
		case json.Delim('{'):
			tooDeep = tooDeep || depth+1 > maxDepth
			seen := map[string]bool{}
			for dec.More() {
				k, _ := dec.Token()
				dup = dup || seen[k.(string)]
				seen[k.(string)] = true
				walk(depth + 1)
			}
			_, _ = dec.Token()
		case json.Delim('['):
			tooDeep = tooDeep || depth+1 > maxDepth
			for dec.More() {
				walk(depth + 1)
			}
			_, _ = dec.Token()
		}
	}
	walk(0)
	switch {
	case tooDeep:
		return prefix + fmt.Sprintf("nested deeper than %d levels: malformed event", maxDepth)
	case bytes.TrimLeft(body, " \t\r\n")[0] != '{':
		return prefix + "not a JSON object: malformed event"
	case dup:
		return prefix + "duplicate object key: malformed event"
	}
	return ""
}

func FuzzDecodeObject(f *testing.F) {
	for _, b := range fixtures(f, "") {
		f.Add(b)
	}
	for _, s := range []string{`{"a":1,"a":2}`, `{"a":1,"\u0061":2}`, `{"a":{"b":1},"c":{"b":1}}`, `{"a:":"b:","c\"":":"}`,
		`{"\\":{"\\\"":1}}`, strings.Repeat(`[`, 70), `{"x":[{"a":1},{"a":1,"a":1}]}`,
		` { "a" : [ ] , "b" : { } , "c" : [ 1 , -2.5e+3 , true , false , null ] } `, "\t{\r\n}\n",
		`{"a\"b":"c\\","\ud800":"\udc00","\ufffd":1}`, `{"\u00e9":"\/","é":"\b\f"}`, `[{}]`, `"s"`, `0`,
		strings.Repeat(`{"a":`, 64) + `1` + strings.Repeat(`}`, 64),
		strings.Repeat(`{"a":`, 65) + `1` + strings.Repeat(`}`, 65),
		// Syntax errors, the truncated ones at every length.
		`{"a":01}`, `{"a":1.}`, `{"a":-}`, `{"a":1e}`, `{"a":1e+}`, `{"a":.5}`, `{"a":+1}`, `{"a":-01}`,
		`{"a":tru}`, `{"a":nul}`, `{"a":True}`, `{"a":nulll}`, `{"a":1,}`, `{"a":[1,]}`, `{,}`, `{"a" 1}`,
		`{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"\u12g4"}`, "{\"a\":\"\x01\"}", "{\"a\x7f\":1}", `{"a":1}}`,
		`{'a':1}`, `{a:1}`, `{"a":1} x`, `{"a":[1 2]}`, `{"a":1 "b":2}`, "\ufeff{}", `{"a":"\uD83D\uDE00"}`,
		// Depth and syntax together: the syntax error wins.
		strings.Repeat(`[`, 65) + strings.Repeat(`]`, 64), `{"a":1,"a":2,"b":` + strings.Repeat(`[`, 65) + strings.Repeat(`]`, 65) + `}`,
		`[{"a":1,"a":2}]`, `{"a":1,"a":2} x`,
		// SAD: dropped at any depth, but checked like any other member.
		`{"cvv":1,"CVV":2,"a":[{"pin":{"x":1}},{"b":{"track_2":null}}]}`, `{"cvv":1,"cvv":2}`, `{"cvv":{"a":1,"a":2}}`,
		`{"cvv":1,"cvc":2,"pin":3}`, `{"cvv":1,"cvc":2,"pin":3,"cvc":4}`, `{"cvv":1,"cvc":2,"cvv":3}`, `{"cvv":{"cvv":1},"cvc":{"cvv":1}}`,
		`{"cvv":` + strings.Repeat(`[`, 64) + strings.Repeat(`]`, 64) + `}`, `{"cvv":[1,]}`, `{"TRAC\u212a":1,"Track":2}`,
	} {
		f.Add([]byte(s))
		for n := range len(s) {
			f.Add([]byte(s[:n]))
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := decodeObject(body)
		want, wantErr := referenceDecode(body)
		wantSAD := StripSAD(want)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("decodeObject(%q) err = %v, reference err = %v", body, err, wantErr)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error does not wrap ErrMalformed: %v", err)
		}
		if msg := errorString(err); msg != referenceDecodeError(body) {
			t.Fatalf("decodeObject(%q) err = %q, want %q", body, msg, referenceDecodeError(body))
		}
		if !reflect.DeepEqual(got.root, want) || got.sadRemoved != wantSAD {
			t.Fatalf("decodeObject(%q) = %v, SAD %v; reference %v, SAD %v", body, got.root, got.sadRemoved, want, wantSAD)
		}
	})
}

func errorString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
