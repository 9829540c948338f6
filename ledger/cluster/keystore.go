package cluster

import (
	"context"
	"errors"
	"fmt"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/paytrail/paytrail/ledger"
)

// KeyStore keeps the cluster's wrapped data keys in its key bucket, never
// in the ledger stream, so that an erasure can remove them: JetStream
// cannot reliably erase one message of a replicated stream, but purging a
// key of a bucket removes its every revision. It is what every node's
// crypto.DataKeys reads, and what the key pools and erasures write.
type KeyStore struct {
	c *Conn
	// recent holds wrapped keys the bucket pushed to this node as they
	// were stored (watch), so that applying another node's record reads
	// its key from memory instead of asking the bucket's leader; a purge
	// removes the key here too.
	recent *lru.Cache[string, []byte]
	// gone are the keys this node destroyed: a put of one still queued
	// in the watch must not bring it back.
	gone *lru.Cache[string, struct{}]
}

// recentKeys bounds the wrapped keys kept from the watch (about 150 bytes
// each): a few seconds of ingest, more than the stream's records in
// flight between a key's store and its record's apply.
const recentKeys = 65536

// KeyStore returns the cluster's key store. The first call starts
// watching the key bucket, until the connection closes.
func (c *Conn) KeyStore() *KeyStore {
	c.ksOnce.Do(func() {
		recent, _ := lru.New[string, []byte](recentKeys)
		gone, _ := lru.New[string, struct{}](recentKeys)
		c.ks = &KeyStore{c: c, recent: recent, gone: gone}
		c.ks.watch()
	})
	return c.ks
}

// watch follows the key bucket's new keys and purges. It starts after
// the keys already stored (UpdatesOnly): those are read on demand.
func (k *KeyStore) watch() {
	w, err := k.c.dataKeys.WatchAll(context.Background(), jetstream.UpdatesOnly())
	if err != nil {
		k.c.cfg.Logger.Warn("cannot watch the key bucket; data keys are read on demand", "err", err)
		return
	}
	go func() {
		for e := range w.Updates() {
			if e == nil {
				continue
			}
			if e.Operation() == jetstream.KeyValuePut {
				if !k.gone.Contains(e.Key()) {
					k.recent.Add(e.Key(), e.Value())
				}
			} else {
				k.recent.Remove(e.Key())
			}
		}
	}()
}

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
	if k.gone.Contains(id) {
		return nil, false, nil
	}
	if v, ok := k.recent.Get(id); ok {
		return v, true, nil
	}
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
		k.gone.Add(id, struct{}{})
		k.recent.Remove(id)
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
