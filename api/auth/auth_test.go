package auth

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
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
