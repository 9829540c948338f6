package api

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/paytrail/paytrail/crypto"
	"github.com/paytrail/paytrail/ledger/keystore"
)

// rotateKeys rotates one keyset online (POST /v1/admin/keys/{keyset}/rotate):
// the new primary is in force for every write from the answer on, without
// a restart. A signer rotation co-signs the current checkpoint with the old
// and new keys at once; a datakey rotation starts the background re-wrap of
// every stored data key. The admin entry is recorded after the rotation,
// naming the old and new primaries; if it cannot be recorded the answer is
// 503, and the next service.start entry lists the keys in force.
func (s *Server) rotateKeys(c *gin.Context) {
	name := c.Param("keyset")
	if s.cluster != nil {
		s.abort(c, errClusterKeys)
		return
	}
	if !slices.Contains(crypto.KeysetNames(), name) {
		s.abort(c, newError(http.StatusNotFound, "unknown_keyset", "no such keyset: use token, blind, signer or datakey"))
		return
	}
	before := primaryOf(s.keys, name)
	if err := s.keys.Rotate(c, name); err != nil {
		s.log.Error("failed to rotate keyset", "keyset", name, "err", err)
		s.abort(c, errUnavailable)
		return
	}
	after := primaryOf(s.keys, name)
	switch name {
	case crypto.KeysetSigner:
		signer, err := s.keys.NoteSigner(s.ledger.Origin())
		if err == nil {
			err = s.ledger.RotateSigner(signer)
		}
		if err != nil {
			s.log.Error("failed to put the rotated signer in force", "err", err)
			s.abort(c, errUnavailable)
			return
		}
	case crypto.KeysetDataKey:
		if err := s.rewrap.start(after); err != nil {
			s.log.Error("failed to start re-wrapping data keys", "err", err)
			s.abort(c, errUnavailable)
			return
		}
	}
	if err := s.recordAdmin(c, "keys.rotate", name, map[string]string{"previous_primary": before, "primary": after}); err != nil {
		s.abort(c, err)
		return
	}
	out := gin.H{"keyset": name, "previous_primary": before, "primary": after, "keysets": s.keys.Status()}
	if name == crypto.KeysetDataKey {
		out["datakey_rewrap"] = s.rewrap.state()
	}
	if name == crypto.KeysetToken || name == crypto.KeysetBlind {
		out["warning"] = "tokens and blind indexes of new events change; searches look under every key"
	}
	c.JSON(http.StatusOK, out)
}

func primaryOf(k *crypto.Keysets, name string) string {
	for _, ks := range k.Status() {
		if ks.Name != name {
			continue
		}
		for _, key := range ks.Keys {
			if key.Primary {
				return key.ID
			}
		}
	}
	return ""
}

// rewrapper re-wraps every stored data key under the datakey primary after
// a rotation, in the background, at most rate keys per second, resuming
// from the persisted cursor after a restart (keystore.RewrapState).
type rewrapper struct {
	dataKeys *crypto.DataKeys
	store    *keystore.Store
	rate     int
	log      interface {
		Info(string, ...any)
		Error(string, ...any)
	}

	mu      sync.Mutex
	cur     keystore.RewrapState
	has     bool
	running bool
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// rewrapBatch is how many keys one synced batch re-wraps.
const rewrapBatch = 256

func newRewrapper(s *Server) *rewrapper {
	// Only the local key store keeps a re-wrap cursor; a cluster's key
	// bucket has none (rotation is refused there).
	store, _ := s.keyStore.(*keystore.Store)
	r := &rewrapper{dataKeys: s.dataKeys, store: store, rate: s.cfg.RewrapRate, log: s.log}
	if r.rate <= 0 {
		r.rate = 2000
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r
}

// resume continues a job a restart interrupted, and starts one when the
// datakey primary is not the one the last job re-wrapped to (a rotation
// made offline with `paytrail keys rotate`, or one whose job never got
// stored).
func (r *rewrapper) resume(keys *crypto.Keysets) error {
	if r.store == nil {
		return nil
	}
	st, found, err := r.store.RewrapState()
	if err != nil {
		return err
	}
	primary := keys.DataKeyPrimary()
	rotated := false
	for _, ks := range keys.Status() {
		if ks.Name == crypto.KeysetDataKey {
			rotated = len(ks.Keys) > 1
		}
	}
	if found && st.Target != primary || !found && rotated {
		return r.start(primary)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cur, r.has = st, found
	if found && !st.Done {
		r.goLocked()
	}
	return nil
}

// start begins a new job for target, the new datakey primary (a job in
// progress starts over: its keys need the newer primary too).
func (r *rewrapper) start(target string) error {
	if r.store == nil {
		return errors.New("re-wrapping needs the local key store")
	}
	st := keystore.RewrapState{Target: target, Pass: 1, Started: time.Now().UTC()}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.store.SetRewrapState(st); err != nil {
		return err
	}
	r.cur, r.has = st, true
	r.goLocked()
	return nil
}

func (r *rewrapper) goLocked() {
	if r.running || r.ctx.Err() != nil {
		return
	}
	r.running = true
	r.wg.Add(1)
	go r.run()
}

// state returns the job's progress (nil if none ever ran).
func (r *rewrapper) state() *keystore.RewrapState {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.has {
		return nil
	}
	st := r.cur
	return &st
}

func (r *rewrapper) run() {
	defer r.wg.Done()
	n := min(rewrapBatch, r.rate)
	for {
		r.mu.Lock()
		st := r.cur
		r.mu.Unlock()
		began := time.Now()
		next, end, err := r.store.RewrapBatch(r.ctx, st, n, r.dataKeys.Rewrap)
		if err != nil {
			r.mu.Lock()
			r.running = false
			r.mu.Unlock()
			if r.ctx.Err() == nil {
				r.log.Error("re-wrapping data keys stopped; it resumes at the next start", "err", err)
			}
			return
		}
		if end {
			if next.PassRewrapped == 0 {
				next.Done, next.Finished = true, time.Now().UTC()
			} else {
				next.Pass, next.Cursor, next.PassRewrapped = next.Pass+1, "", 0
			}
			err = r.store.SetRewrapState(next)
		}
		r.mu.Lock()
		if r.cur.Started.Equal(st.Started) && r.cur.Target == st.Target {
			r.cur = next
		} else {
			// A newer rotation started over meanwhile; go on with it.
			next = r.cur
		}
		if next.Done || err != nil {
			r.running = false
			r.mu.Unlock()
			if err == nil {
				r.log.Info("every data key is wrapped by the datakey primary", "target", next.Target, "rewrapped", next.Rewrapped)
			}
			return
		}
		r.mu.Unlock()
		wait := time.Duration(n)*time.Second/time.Duration(r.rate) - time.Since(began)
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-r.ctx.Done():
				t.Stop()
			case <-t.C:
			}
		}
	}
}

// stop ends the job's goroutine (the persisted cursor keeps its place).
func (r *rewrapper) stop() {
	r.cancel()
	r.wg.Wait()
}

// keysStatus answers GET /v1/admin/keys: every keyset's key ids,
// primaries, status and dates (never key material) and the progress of the
// datakey re-wrap. Admin reads are access entries too.
func (s *Server) keysStatus(c *gin.Context) {
	if _, err := s.recordAccess(c, access{Action: "keys.read", Resource: "keys"}, http.StatusOK); err != nil {
		s.abort(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"keysets": s.keys.Status(), "datakey_rewrap": s.rewrap.state()})
}
