package keystore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// rewrapStateKey holds the RewrapState of the background re-wrap, outside
// the "k" range of wrapped keys.
var rewrapStateKey = []byte("mrewrap")

// RewrapState is the persisted progress of re-wrapping every stored data
// key under the current primary key of the datakey keyset, after a
// rotation of it. It is written in the same synced batch as the keys it
// covers, so a crash resumes where the last batch ended.
type RewrapState struct {
	// Target is the datakey key id (8 hex digits) new wrappings use.
	Target string `json:"target"`
	// Pass counts passes over the store; a pass that re-wraps nothing
	// ends the job (a second pass catches keys stored while the first ran
	// that were wrapped before the rotation took effect).
	Pass int `json:"pass"`
	// Cursor is the last key id the current pass has done; "" at its
	// start.
	Cursor string `json:"cursor"`
	// Scanned and Rewrapped count keys over all passes; PassRewrapped
	// counts those of the current pass.
	Scanned       int64     `json:"scanned"`
	Rewrapped     int64     `json:"rewrapped"`
	PassRewrapped int64     `json:"pass_rewrapped"`
	Started       time.Time `json:"started"`
	Finished      time.Time `json:"finished,omitzero"`
	Done          bool      `json:"done"`
}

// RewrapState returns the persisted re-wrap progress; found is false if no
// datakey rotation ever started one.
func (s *Store) RewrapState() (st RewrapState, found bool, err error) {
	release, err := s.use()
	if err != nil {
		return st, false, err
	}
	defer release()
	v, closer, err := s.db.Get(rewrapStateKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return st, false, nil
	}
	if err != nil {
		return st, false, fmt.Errorf("failed to read re-wrap progress: %w", err)
	}
	defer closer.Close()
	if err := json.Unmarshal(v, &st); err != nil {
		return st, false, fmt.Errorf("failed to read re-wrap progress: %w", err)
	}
	return st, true, nil
}

// SetRewrapState durably stores st (a new job).
func (s *Store) SetRewrapState(st RewrapState) error {
	v, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return s.write(func() error { return s.db.Set(rewrapStateKey, v, pebble.Sync) })
}

// RewrapBatch re-wraps up to n stored keys after st.Cursor: fn returns a
// key's new wrapped bytes, or changed=false to keep it. The new bytes and
// the advanced state are committed in one synced batch, and the state is
// returned; at the end of the keys, end is true and the state's cursor is
// the last key id. Destroy waits for a batch in progress, and a batch for
// a Destroy, so a key destroyed by an erasure is never written back.
func (s *Store) RewrapBatch(ctx context.Context, st RewrapState, n int, fn func(id string, wrapped []byte) ([]byte, bool, error)) (RewrapState, bool, error) {
	var (
		next RewrapState
		end  bool
	)
	err := s.write(func() error {
		var err error
		next, end, err = s.rewrapBatch(ctx, st, n, fn)
		return err
	})
	if err != nil {
		return st, false, err
	}
	return next, end, nil
}

// rewrapBatch is RewrapBatch, holding the store open.
func (s *Store) rewrapBatch(ctx context.Context, st RewrapState, n int, fn func(id string, wrapped []byte) ([]byte, bool, error)) (_ RewrapState, end bool, err error) {
	s.destroyMu.Lock()
	defer s.destroyMu.Unlock()
	lower := []byte("k")
	if st.Cursor != "" {
		lower = append(dataKey(st.Cursor), 0)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: []byte("l")})
	if err != nil {
		return st, false, fmt.Errorf("failed to read key store: %w", err)
	}
	defer it.Close()
	b := s.db.NewBatch()
	defer b.Close()
	count := 0
	valid := it.First()
	for ; valid && count < n; valid = it.Next() {
		if err := ctx.Err(); err != nil {
			return st, false, err
		}
		id := string(it.Key()[1:])
		out, changed, err := fn(id, bytes.Clone(it.Value()))
		if err != nil {
			return st, false, err
		}
		if changed {
			if err := b.Set(dataKey(id), out, nil); err != nil {
				return st, false, err
			}
			st.Rewrapped++
			st.PassRewrapped++
		}
		st.Scanned++
		st.Cursor = id
		count++
	}
	if err := it.Error(); err != nil {
		return st, false, fmt.Errorf("failed to read key store: %w", err)
	}
	end = !valid
	v, err := json.Marshal(st)
	if err != nil {
		return st, false, err
	}
	if err := b.Set(rewrapStateKey, v, nil); err != nil {
		return st, false, err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return st, false, fmt.Errorf("failed to store re-wrapped keys: %w", err)
	}
	return st, end, nil
}
