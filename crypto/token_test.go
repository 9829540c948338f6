package crypto

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

func TestNormalizePAN(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want string
		err  error
	}{
		{"plain 16", "4111111111111111", "4111111111111111", nil},
		{"spaces", "4111 1111 1111 1111", "4111111111111111", nil},
		{"dashes", "4111-1111-1111-1111", "4111111111111111", nil},
		{"mixed separators", " 5555-5555 5555-4444 ", "5555555555554444", nil},
		{"amex 15", "3782 822463 10005", "378282246310005", nil},
		{"length 13", "4222222222222", "4222222222222", nil},
		{"length 19", "4111111111111111110", "4111111111111111110", nil},
		{"length 12 luhn-valid", "400000000002", "", errPANLength},
		{"length 20 luhn-valid", "41111111111111111115", "", errPANLength},
		{"luhn fail", "4111111111111112", "", errPANCheck},
		{"letter", "4111a11111111111", "", errPANCharacter},
		{"dot", "4111.1111.1111.1111", "", errPANCharacter},
		{"tab", "4111\t1111111111111", "", errPANCharacter},
		{"unicode digit", "４111111111111111", "", errPANCharacter},
		{"empty", "", "", errPANLength},
		{"only separators", " - - ", "", errPANLength},
		{"too long input", strings.Repeat(" ", 60) + "4111111111111111", "", errPANLength},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizePAN(tc.in)
			if got != tc.want {
				t.Errorf("NormalizePAN(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("NormalizePAN(%q) error = %v, want %v", tc.in, err, tc.err)
			}
			if tc.err != nil && !errors.Is(err, ErrInvalidPAN) {
				t.Errorf("error %v does not wrap ErrInvalidPAN", err)
			}
		})
	}
}

func FuzzNormalizePAN(f *testing.F) {
	for _, s := range []string{
		"4111111111111111", "4111 1111 1111 1111", "4111-1111-1111-1111", "378282246310005",
		"4222222222222", "4111111111111111110", "400000000002", "41111111111111111115",
		"4111111111111112", "4111a11111111111", "", "--", "0000000000000", "９９",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := NormalizePAN(in)
		if err != nil {
			if !errors.Is(err, ErrInvalidPAN) {
				t.Fatalf("error %v does not wrap ErrInvalidPAN", err)
			}
			if got != "" {
				t.Fatalf("NormalizePAN returned %q with an error", got)
			}
			// No digit at all in the message: not the number, not a part
			// of it, not even its length.
			if strings.ContainsFunc(err.Error(), unicode.IsDigit) {
				t.Fatalf("error message %q contains a digit", err)
			}
			return
		}
		if len(got) < 13 || len(got) > 19 || strings.ContainsFunc(got, func(r rune) bool { return r < '0' || r > '9' }) {
			t.Fatalf("NormalizePAN(%q) = %q: not 13 to 19 ASCII digits", in, got)
		}
		if !luhnValid([]byte(got)) {
			t.Fatalf("NormalizePAN(%q) = %q fails Luhn", in, got)
		}
		if stripped := strings.NewReplacer(" ", "", "-", "").Replace(in); stripped != got {
			t.Fatalf("NormalizePAN(%q) = %q, want %q", in, got, stripped)
		}
		again, err := NormalizePAN(got)
		if err != nil || again != got {
			t.Fatalf("NormalizePAN not idempotent on %q: %q, %v", got, again, err)
		}
	})
}

var tokenRE = regexp.MustCompile(`^tok_[0-9a-f]{8}_[A-Za-z0-9_-]{43}$`)

func TestTokenize(t *testing.T) {
	ctx := context.Background()
	k, dir, _ := newTestKeysets(t)

	c1, err := k.Tokenize(testPAN)
	if err != nil {
		t.Fatal(err)
	}
	if !tokenRE.MatchString(c1.Token) {
		t.Errorf("token %q does not match %s", c1.Token, tokenRE)
	}
	if got, want := c1.Token[4:12], k.Status()[0].Keys[0].ID; got != want {
		t.Errorf("token key id = %s, want primary %s", got, want)
	}
	if c1.BIN != "411111" || c1.Last4 != "1111" {
		t.Errorf("BIN, Last4 = %q, %q, want 411111, 1111", c1.BIN, c1.Last4)
	}
	c1b, err := k.Tokenize("4111 1111-1111 1111")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c1b, c1) || len(c1.Tokens) != 1 || c1.Tokens[0] != c1.Token {
		t.Errorf("same PAN with separators tokenized differently: %+v vs %+v", c1b, c1)
	}
	c2, err := k.Tokenize(testPAN2)
	if err != nil {
		t.Fatal(err)
	}
	if c2.Token == c1.Token {
		t.Errorf("different PANs have the same token")
	}
	if c2.BIN != "555555" || c2.Last4 != "4444" {
		t.Errorf("BIN, Last4 = %q, %q, want 555555, 4444", c2.BIN, c2.Last4)
	}

	// Another deployment (other keys) gives other tokens.
	other, _, _ := newTestKeysets(t)
	o1, _ := other.Tokenize(testPAN)
	if o1.Token == c1.Token {
		t.Errorf("tokens under different keys are equal")
	}

	_, err = k.Tokenize("4111111111111112")
	if !errors.Is(err, ErrInvalidPAN) || strings.Contains(err.Error(), "411111") {
		t.Errorf("Tokenize(bad) = %v, want ErrInvalidPAN without digits", err)
	}

	// Rotation: new token, and Tokens finds both, new first.
	if err := k.Rotate(ctx, KeysetToken); err != nil {
		t.Fatal(err)
	}
	r1, err := k.Tokenize(testPAN)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Token == c1.Token {
		t.Errorf("token unchanged after rotating the token keyset")
	}
	toks, err := k.Tokens(testPAN)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{r1.Token, c1.Token}; !slices.Equal(toks, want) {
		t.Errorf("Tokens = %v, want %v", toks, want)
	}
	if _, err := k.Tokens("12"); !errors.Is(err, ErrInvalidPAN) {
		t.Errorf("Tokens(bad) = %v, want ErrInvalidPAN", err)
	}

	// Nothing written under the data dir holds the PAN.
	writeFile(t, filepath.Join(dir, "tokens.txt"), []byte(strings.Join(toks, "\n")))
	scanDirFor(t, filepath.Dir(dir), testPAN, "4111 1111", testPAN2)
}

func TestBlindIndex(t *testing.T) {
	ctx := context.Background()
	k, _, _ := newTestKeysets(t)
	biRE := regexp.MustCompile(`^bi_[0-9a-f]{8}_[A-Za-z0-9_-]{43}$`)

	e := k.BlindIndex("email", testEmail)
	if !biRE.MatchString(e) {
		t.Errorf("blind index %q does not match %s", e, biRE)
	}
	for _, variant := range []string{"  " + strings.ToUpper(testEmail) + "\n", "Zaphod.TestCardholder@Example.com"} {
		if got := k.BlindIndex("email", variant); got != e {
			t.Errorf("BlindIndex(email, %q) = %s, want the normalized %s", variant, got, e)
		}
	}
	if k.BlindIndex("name", testEmail) == e {
		t.Errorf("same value in two fields gives the same index")
	}
	if k.BlindIndex("name", "Ann") == k.BlindIndex("name", "ann") {
		t.Errorf("fields other than email must not be case folded")
	}
	// Length-prefixing keeps (field, value) pairs apart.
	if k.BlindIndex("ab", "c") == k.BlindIndex("a", "bc") {
		t.Errorf("ambiguous encoding of field and value")
	}
	// A blind index is not a token of the same string.
	c, _ := k.Tokenize(testPAN)
	if strings.TrimPrefix(k.BlindIndex("pan", testPAN), "bi_") == strings.TrimPrefix(c.Token, "tok_") {
		t.Errorf("blind index equals token")
	}

	if err := k.Rotate(ctx, KeysetBlind); err != nil {
		t.Fatal(err)
	}
	e2 := k.BlindIndex("email", testEmail)
	if e2 == e {
		t.Errorf("blind index unchanged after rotation")
	}
	if got, want := k.BlindIndexes("email", testEmail), []string{e2, e}; !slices.Equal(got, want) {
		t.Errorf("BlindIndexes = %v, want %v", got, want)
	}
}

func TestDigest(t *testing.T) {
	ctx := context.Background()
	k, _, _ := newTestKeysets(t)
	body := []byte(`{"id":"evt_1","card":{"number":"` + testPAN + `"}}`)

	d := k.Digest("webhook", body)
	if len(d) != 36 {
		t.Fatalf("len(Digest) = %d, want 36", len(d))
	}
	if !k.MatchDigest("webhook", body, d) {
		t.Errorf("MatchDigest of own digest = false")
	}
	if string(k.Digest("webhook", body)) != string(d) {
		t.Errorf("Digest is not deterministic")
	}
	changed := append([]byte(nil), body...)
	changed[len(changed)-3] ^= 1
	if k.MatchDigest("webhook", changed, d) {
		t.Errorf("MatchDigest of changed body = true")
	}
	if k.MatchDigest("other", body, d) {
		t.Errorf("MatchDigest under another label = true")
	}
	if k.MatchDigest("webhook", body, d[:35]) {
		t.Errorf("MatchDigest of truncated digest = true")
	}
	if strings.Contains(string(d), testPAN) {
		t.Errorf("digest contains the PAN")
	}

	// After rotation new digests differ but old ones still match.
	if err := k.Rotate(ctx, KeysetBlind); err != nil {
		t.Fatal(err)
	}
	if string(k.Digest("webhook", body)) == string(d) {
		t.Errorf("digest unchanged after rotation")
	}
	if !k.MatchDigest("webhook", body, d) {
		t.Errorf("digest made before rotation no longer matches")
	}
	other, _, _ := newTestKeysets(t)
	if other.MatchDigest("webhook", body, d) {
		t.Errorf("digest matches under a keyset that does not have its key")
	}
}

func TestNoPANInFiles(t *testing.T) {
	// Tokenizing writes nothing; the keyset directory never holds a PAN.
	k, dir, _ := newTestKeysets(t)
	for range 10 {
		if _, err := k.Tokenize(testPAN); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(KeysetNames()) {
		t.Errorf("tokenizing created files in the keysets dir")
	}
	scanDirFor(t, dir, testPAN)
}
