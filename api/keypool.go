package api

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/paytrail/paytrail/crypto"
	"github.com/paytrail/paytrail/ledger"
)

// Every payment event is sealed under a data key of its own (see
// docs/privacy-requests.md), so ingestion needs a new, durably stored key
// per event. Making and storing one on the request path would add a synced
// key store write to every webhook; instead a pool keeps keys that are
// already durable in the key store, refilled in the background in batches
// that share one fsync. A key the pool made but never handed out (the
// process stopped) is a key without an entry, which is harmless.
const (
	keyPoolSize  = 1024
	keyPoolBatch = 256
)

// keyWriter stores wrapped data keys durably.
type keyWriter interface {
	PutWrapped(ctx context.Context, keys []ledger.WrappedKey) error
}

type keyPool struct {
	dataKeys *crypto.DataKeys
	store    keyWriter
	log      *slog.Logger
	logLimit *logLimiter // a failing store fails every refill
	keys     chan *crypto.DataKey
	filling  atomic.Bool
}

func newKeyPool(dk *crypto.DataKeys, store keyWriter, log *slog.Logger) *keyPool {
	return &keyPool{dataKeys: dk, store: store, log: log, logLimit: newLogLimiter(logEvery), keys: make(chan *crypto.DataKey, keyPoolSize)}
}

// take returns a fresh data key whose wrapped bytes are durably stored.
// When the pool is empty it makes and stores one itself.
func (p *keyPool) take(ctx context.Context) (*crypto.DataKey, error) {
	if len(p.keys) < keyPoolSize-keyPoolBatch {
		p.refill()
	}
	select {
	case k := <-p.keys:
		return k, nil
	default:
	}
	k, wrapped, err := p.dataKeys.New()
	if err != nil {
		return nil, err
	}
	if err := p.store.PutWrapped(ctx, []ledger.WrappedKey{{ID: k.ID(), Wrapped: wrapped}}); err != nil {
		return nil, err
	}
	return k, nil
}

// refill starts one background fill, unless one is running.
func (p *keyPool) refill() {
	if !p.filling.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer p.filling.Store(false)
		for len(p.keys) <= keyPoolSize-keyPoolBatch {
			batch := make([]*crypto.DataKey, 0, keyPoolBatch)
			wrapped := make([]ledger.WrappedKey, 0, keyPoolBatch)
			for range keyPoolBatch {
				k, w, err := p.dataKeys.New()
				if err != nil {
					p.log.Error("failed to make data keys for the pool", "err", err)
					return
				}
				batch = append(batch, k)
				wrapped = append(wrapped, ledger.WrappedKey{ID: k.ID(), Wrapped: w})
			}
			// The pool outlives no request: a fill that fails because the
			// key store closed is the end of the process.
			if err := p.store.PutWrapped(context.Background(), wrapped); err != nil {
				if n, ok := p.logLimit.allow("pool", time.Now()); ok {
					p.log.Warn("failed to store data keys for the pool", "err", err, "suppressed_since_last", n)
				}
				return
			}
			for _, k := range batch {
				select {
				case p.keys <- k:
				default:
					return
				}
			}
		}
	}()
}
