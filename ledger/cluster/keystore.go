package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/paytrail/paytrail/ledger"
)

// KeyStore keeps the cluster's wrapped data keys in its key bucket, never
// in the ledger stream, so that an erasure can remove them: JetStream
// cannot reliably erase one message of a replicated stream, but purging a
// key of a bucket removes its every revision. It is what every node's
// crypto.DataKeys reads, and what the key pools and erasures write.
type KeyStore struct{ c *Conn }

// KeyStore returns the cluster's key store.
func (c *Conn) KeyStore() *KeyStore { return &KeyStore{c} }

// PutWrapped stores keys, all published at once and each acknowledged by
// the bucket's quorum before it returns.
func (k *KeyStore) PutWrapped(ctx context.Context, keys []ledger.WrappedKey) error {
	ctx, cancel := context.WithTimeout(ctx, k.c.cfg.Timeout)
	defer cancel()
	subject := "$KV." + k.c.dataKeys.Bucket() + "."
	futures := make([]jetstream.PubAckFuture, 0, len(keys))
	for _, w := range keys {
		f, err := k.c.js.PublishMsgAsync(&nats.Msg{Subject: subject + w.ID, Data: w.Wrapped})
		if err != nil {
			return fmt.Errorf("failed to store data keys: %w", err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("failed to store data keys: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("failed to store data keys: %w", ctx.Err())
		}
	}
	return nil
}

// Wrapped returns the wrapped bytes of data key id, found=false once it
// is destroyed (or if it never was stored).
func (k *KeyStore) Wrapped(ctx context.Context, id string) ([]byte, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, k.c.cfg.Timeout)
	defer cancel()
	e, err := k.c.dataKeys.Get(ctx, id)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("failed to read data key: %w", err)
	}
	return e.Value(), true, nil
}

// Destroy purges the keys ids from the bucket: every revision of each is
// removed from the servers' stores (what remains on their disks is in
// SECURITY.md). Destroying a key twice is harmless.
func (k *KeyStore) Destroy(ctx context.Context, ids []string) error {
	ctx, cancel := context.WithTimeout(ctx, k.c.cfg.Timeout)
	defer cancel()
	for _, id := range ids {
		if err := k.c.dataKeys.Purge(ctx, id); err != nil {
			return fmt.Errorf("failed to destroy data key: %w", err)
		}
	}
	return nil
}

// Healthy reports whether the cluster's servers can be reached.
func (k *KeyStore) Healthy() error {
	if !k.c.nc.IsConnected() {
		return fmt.Errorf("%w: not connected to NATS", ledger.ErrUnavailable)
	}
	return nil
}
