package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
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

func FuzzDecodeObject(f *testing.F) {
	for _, b := range fixtures(f, "") {
		f.Add(b)
	}
	for _, s := range []string{`{"a":1,"a":2}`, `{"a":1,"\u0061":2}`, `{"a":{"b":1},"c":{"b":1}}`, `{"a:":"b:","c\"":":"}`,
		`{"\\":{"\\\"":1}}`, strings.Repeat(`[`, 70), `{"x":[{"a":1},{"a":1,"a":1}]}`,
		` { "a" : [ ] , "b" : { } , "c" : [ 1 , -2.5e+3 , true , false , null ] } `, "\t{\r\n}\n",
		`{"a\"b":"c\\","\ud800":"\udc00","\ufffd":1}`, `{"\u00e9":"\/","é":"\b\f"}`, `[{}]`, `"s"`, `0`,
		strings.Repeat(`{"a":`, 64) + `1` + strings.Repeat(`}`, 64),
		strings.Repeat(`{"a":`, 65) + `1` + strings.Repeat(`}`, 65)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := decodeObject(body)
		want, wantErr := referenceDecode(body)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("decodeObject(%q) err = %v, reference err = %v", body, err, wantErr)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error does not wrap ErrMalformed: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeObject(%q) = %v, reference %v", body, got, want)
		}
	})
}
