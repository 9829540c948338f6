package auth

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/paytrail/paytrail/crypto"
)

type mapLookup map[string]*Principal

func (m mapLookup) PrincipalByTokenHash(_ context.Context, h string) (*Principal, bool, error) {
	p, ok := m[h]
	return p, ok, nil
}

func TestBearer(t *testing.T) {
	tok, hash, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	revokedTok, revokedHash, _ := NewToken()
	now := time.Now()
	b := Bearer{Lookup: mapLookup{
		hash:        {ID: "p1", Role: RoleAuditor},
		revokedHash: {ID: "p2", Role: RoleAuditor, Revoked: &now},
	}}
	for _, tc := range []struct {
		header string
		wantID string
	}{
		{"Bearer " + tok, "p1"},
		{"bearer " + tok, "p1"},
		{"Bearer " + revokedTok, ""},
		{"Bearer " + tok + "x", ""},
		{"Basic " + tok, ""},
		{tok, ""},
		{"", ""},
		{"Bearer ptk_", ""},
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		p, err := b.Authenticate(context.Background(), r)
		switch {
		case tc.wantID == "" && !errors.Is(err, ErrUnauthenticated):
			t.Errorf("%q: err = %v, want ErrUnauthenticated", tc.header, err)
		case tc.wantID != "" && (err != nil || p.ID != tc.wantID):
			t.Errorf("%q: got %v, %v; want %s", tc.header, p, err, tc.wantID)
		}
	}
}

func TestParseMerchants(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []string
		ok   bool
	}{
		{[]string{"a,b"}, []string{"a", "b"}, true},
		{[]string{"*"}, []string{"*"}, true},
		{[]string{"a", "a"}, []string{"a"}, true},
		{[]string{"*,a"}, nil, false},
		{[]string{""}, nil, false},
		{[]string{"bad id"}, nil, false},
	} {
		got, err := ParseMerchants(tc.in)
		if (err == nil) != tc.ok || len(got) != len(tc.want) {
			t.Errorf("ParseMerchants(%q) = %v, %v", tc.in, got, err)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("ParseMerchants(%q) = %v, want %v", tc.in, got, tc.want)
			}
		}
	}
}

func TestCovers(t *testing.T) {
	star := &Principal{Merchants: []string{"*"}}
	ab := &Principal{Merchants: []string{"a", "b"}}
	for _, tc := range []struct {
		p         *Principal
		merchants []string
		want      bool
	}{
		{star, []string{"*"}, true},
		{star, []string{"a", "z"}, true},
		{ab, []string{"a"}, true},
		{ab, []string{"b", "a"}, true},
		{ab, []string{"*"}, false},
		{ab, []string{"a", "c"}, false},
		{ab, []string{"c"}, false},
		{ab, nil, false},
		{star, nil, false},
	} {
		if got := tc.p.Covers(tc.merchants); got != tc.want {
			t.Errorf("%v.Covers(%v) = %v, want %v", tc.p.Merchants, tc.merchants, got, tc.want)
		}
	}
}

// TestInvalidErrorsDoNotEchoInput: the API shows these errors' text to the
// caller, so none may repeat what the caller sent.
func TestInvalidErrorsDoNotEchoInput(t *testing.T) {
	const m = "Zq7echo"
	_, err1 := ParseRole(m)
	_, err2 := ParseMerchants([]string{m + " x"})
	_, err3 := ParseMerchants([]string{"*", m})
	err4 := checkName(m + "\x00")
	err5 := checkName(m + " 4111.1111.1111.1111")
	for i, err := range []error{err1, err2, err3, err4, err5} {
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("error %d = %v, want ErrInvalid", i+1, err)
		} else if strings.Contains(err.Error(), m) || strings.Contains(err.Error(), "1111") {
			t.Errorf("error %d repeats the input: %v", i+1, err)
		}
	}
}

func TestCheckName(t *testing.T) {
	for _, tc := range []struct {
		name string
		want error
	}{
		{"ops team 4 (shift 2)", nil},
		{"Zażółć Gęślą", nil},
		{"batch job 2026-11-20", nil},
		{"", ErrInvalidName},
		{strings.Repeat("x", 201), ErrInvalidName},
		{"two\nlines", ErrInvalidName},
		{"bad \xff utf-8", ErrInvalidName},
		{"ops 4111111111111111", ErrNameHasPAN},
		{"ops 4111.1111.1111.1111", ErrNameHasPAN},
		{"ops 4111\u00a01111\u00a01111\u00a01111", ErrNameHasPAN},
		{"ops ４１１１ １１１１ １１１１ １１１１", ErrNameHasPAN},
	} {
		if err := checkName(tc.name); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("checkName(%q) = %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestPrincipalIDsNeverLookLikeCardNumbers: a principal id in a path must
// reach the access log intact, not as "(redacted)".
func TestPrincipalIDsNeverLookLikeCardNumbers(t *testing.T) {
	for range 200000 {
		if id := NewID(); crypto.ContainsPAN(id) || !strings.HasPrefix(id, "prn_") || len(id) != 20 {
			t.Fatalf("principal id %s", id)
		}
	}
}
