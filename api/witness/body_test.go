package witness

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseAddCheckpoint(t *testing.T) {
	const cp = "example.com/log\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\u2014 example.com/log AAAA\n"
	hash := "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
	for _, tc := range []struct {
		name, body string
		old        uint64
		proof      int
		ok         bool
	}{
		{"no proof", "old 0\n\n" + cp, 0, 0, true},
		{"two hashes", "old 2\n" + hash + "\n" + hash + "\n\n" + cp, 2, 2, true},
		{"max old", "old 18446744073709551615\n\n" + cp, 1<<64 - 1, 0, true},
		{"63 hashes", "old 2\n" + strings.Repeat(hash+"\n", 63) + "\n" + cp, 2, 63, true},
		{"64 hashes", "old 2\n" + strings.Repeat(hash+"\n", 64) + "\n" + cp, 0, 0, false},
		{"empty", "", 0, 0, false},
		{"no newline", "old 0", 0, 0, false},
		{"leading zero", "old 01\n\n" + cp, 0, 0, false},
		{"sign", "old +1\n\n" + cp, 0, 0, false},
		{"negative", "old -1\n\n" + cp, 0, 0, false},
		{"overflow", "old 18446744073709551616\n\n" + cp, 0, 0, false},
		{"two spaces", "old  1\n\n" + cp, 0, 0, false},
		{"crlf", "old 1\r\n\r\n" + cp, 0, 0, false},
		{"unpadded hash", "old 2\n" + strings.TrimSuffix(hash, "=") + "\n\n" + cp, 0, 0, false},
		{"short hash", "old 2\nAAAA\n\n" + cp, 0, 0, false},
		{"no blank line", "old 2\n" + hash + "\n", 0, 0, false},
		{"no checkpoint", "old 2\n\n", 0, 0, false},
		{"checkpoint without final newline", "old 2\n\n" + strings.TrimSuffix(cp, "\n"), 0, 0, false},
		{"too large", "old 0\n\n" + cp + strings.Repeat("x", MaxBodySize), 0, 0, false},
	} {
		got, err := ParseAddCheckpoint([]byte(tc.body))
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", tc.name, err, tc.ok)
			continue
		}
		if !tc.ok {
			continue
		}
		if got.OldSize != tc.old || len(got.Proof) != tc.proof || string(got.Checkpoint) != cp {
			t.Errorf("%s: got old %d, %d hashes, checkpoint %q", tc.name, got.OldSize, len(got.Proof), got.Checkpoint)
		}
		if re := got.Marshal(); !bytes.Equal(re, []byte(tc.body)) {
			t.Errorf("%s: Marshal gives %q, want the input", tc.name, re)
		}
	}
}

// FuzzParseAddCheckpoint: no input panics, and whatever parses encodes
// back to exactly the input (the grammar has one spelling per request).
// Seeds are in testdata/fuzz/FuzzParseAddCheckpoint.
func FuzzParseAddCheckpoint(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := ParseAddCheckpoint(body)
		if err != nil {
			return
		}
		if len(got.Proof) > MaxProofLines {
			t.Fatalf("%d proof lines accepted", len(got.Proof))
		}
		if re := got.Marshal(); !bytes.Equal(re, body) {
			t.Fatalf("Marshal(Parse(%q)) = %q", body, re)
		}
	})
}
