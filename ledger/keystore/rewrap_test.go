package keystore

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/paytrail/paytrail/ledger"
)

// A re-wrap running while erasures destroy keys never writes a destroyed
// key back, and a pass visits every key once.
func TestRewrapNeverResurrects(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ks []ledger.WrappedKey
	for i := range 2000 {
		ks = append(ks, ledger.WrappedKey{ID: fmt.Sprintf("dk_%05d", i), Wrapped: []byte("v1")})
	}
	if err := s.PutWrapped(ctx, ks); err != nil {
		t.Fatal(err)
	}
	var destroyed []string
	for i := 0; i < 2000; i += 3 {
		destroyed = append(destroyed, ks[i].ID)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < len(destroyed); i += 20 {
			if err := s.Destroy(ctx, destroyed[i:min(i+20, len(destroyed))]); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	st := RewrapState{Target: "00000002", Pass: 1}
	seen := map[string]bool{}
	for {
		var end bool
		st, end, err = s.RewrapBatch(ctx, st, 7, func(id string, w []byte) ([]byte, bool, error) {
			if seen[id] {
				return nil, false, fmt.Errorf("key %s visited twice in one pass", id)
			}
			seen[id] = true
			return []byte("v2"), true, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if end {
			break
		}
	}
	wg.Wait()
	for _, id := range destroyed {
		if _, found, err := s.Wrapped(ctx, id); err != nil || found {
			t.Fatalf("destroyed key %s is back after the re-wrap (%v)", id, err)
		}
	}
	got, found, err := s.RewrapState()
	if err != nil || !found || got.Cursor != st.Cursor || got.Scanned != st.Scanned {
		t.Fatalf("stored state %+v, want %+v (%v)", got, st, err)
	}
	n := 0
	if err := s.Each(ctx, func(k ledger.WrappedKey) error {
		n++
		if string(k.Wrapped) != "v2" && seen[k.ID] {
			return fmt.Errorf("key %s visited but not rewritten", k.ID)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != 2000-len(destroyed) {
		t.Fatalf("%d keys left, want %d", n, 2000-len(destroyed))
	}
}
