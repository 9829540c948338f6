package webhook

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
)

// referenceEncode is encodeJSON as encoding/json writes it.
func referenceEncode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}

func checkEncode(t *testing.T, v any) {
	t.Helper()
	got, err := encodeJSON(v)
	want, wantErr := referenceEncode(v)
	if (err == nil) != (wantErr == nil) || !bytes.Equal(got, want) {
		t.Fatalf("encodeJSON(%#v) = %q, %v; encoding/json %q, %v", v, got, err, want, wantErr)
	}
}

func TestEncodeJSON(t *testing.T) {
	for _, v := range []any{
		nil, true, false, "", "plain", `q"uote`, `back\slash`, "tab\there", "nl\n", "\x00\x1f\x7f",
		"<html>&amp;", "żółw ünïcödé 😀", "\u2028\u2029", "bad\xffutf8", "\xc3", "\ufffd",
		json.Number("0"), json.Number("-12.5e+3"), json.Number(""), json.Number("01"), json.Number("1."),
		json.Number("abc"), json.Number("1e"), json.Number("-"), json.Number(".5"), json.Number("1E-0"),
		map[string]any{}, []any{}, []any(nil), map[string]any(nil),
		map[string]any{"b": 1.5, "a": []any{"x", nil, map[string]any{"\n": "k", "é": "v", "A": "Z"}}},
		map[string]any{"k": math.NaN()}, map[string]any{"k": map[string]string{"y": "z"}},
		map[string]any{"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6, "g": 7, "h": 8, "i": 9,
			"j": 10, "k": 11, "l": 12, "m": 13, "n": 14, "o": 15, "p": 16, "q": 17, "r": 18},
	} {
		checkEncode(t, v)
	}
}

// FuzzEncodeJSON holds encodeJSON to encoding/json's bytes for every tree
// decodeObject makes, and for every string.
func FuzzEncodeJSON(f *testing.F) {
	for _, b := range fixtures(f, "") {
		f.Add(b)
	}
	f.Add([]byte(`{"a":"\u2028\ud800<>&\u0000","b":[1,-0.5e10,true,null,{}],"":[]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		checkEncode(t, string(body))
		checkEncode(t, json.Number(body))
		if v, err := referenceDecode(body); err == nil {
			checkEncode(t, v)
		}
	})
}
