package crypto

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/tink-crypto/tink-go/v2/keyset"
	tinkpb "github.com/tink-crypto/tink-go/v2/proto/tink_go_proto"
	"google.golang.org/protobuf/proto"
)

// RewrapMaster re-encrypts every keyset in st, now wrapped by old, under
// next. All keysets are unwrapped and re-wrapped in memory first (each new
// file is checked to load under next), and then replaced at once with
// st.ReplaceKeysets: after a crash st holds either the old keysets, which
// only old opens, or the new ones, which only next opens. The keys inside
// are unchanged, so tokens, signatures and data keys stay valid.
func RewrapMaster(ctx context.Context, st KeysetStorage, old, next *Master) error {
	files := make(map[string][]byte, len(KeysetNames()))
	for _, name := range KeysetNames() {
		raw, err := st.ReadKeyset(ctx, name)
		if err != nil {
			return fmt.Errorf("failed to read keyset %s: %w", name, err)
		}
		h, created, err := parseKeyset(ctx, name, raw, old)
		if err != nil {
			return fmt.Errorf("failed to unwrap keyset %s with the current master key: %w", name, err)
		}
		data, err := encodeKeyset(ctx, name, h, created, next)
		if err != nil {
			return err
		}
		files[name] = data
	}
	if err := st.ReplaceKeysets(ctx, files); err != nil {
		return fmt.Errorf("failed to switch to the new master key: %w", err)
	}
	return nil
}

// StoredKeysets calls fn with the stored (wrapped) bytes of every keyset,
// while no Rotate of k can run: a backup copies them, and snapshots the
// key store inside fn, so that every data key in the snapshot is wrapped
// by a key of the copied datakey keyset.
func (k *Keysets) StoredKeysets(ctx context.Context, fn func(files map[string][]byte) error) error {
	k.rotateMu.Lock()
	defer k.rotateMu.Unlock()
	files := make(map[string][]byte, len(KeysetNames()))
	for _, name := range KeysetNames() {
		b, err := k.store.ReadKeyset(ctx, name)
		if err != nil {
			return fmt.Errorf("failed to read keyset %s: %w", name, err)
		}
		files[name] = b
	}
	return fn(files)
}

// DataKeyPrimary returns the id of the primary key of KeysetDataKey, which
// wraps new data keys, as 8 hex digits.
func (k *Keysets) DataKeyPrimary() string {
	return keyIDHex(primaryID(k.state.Load().handles[KeysetDataKey]))
}

// WrappedBy returns the id (8 hex digits) of the KeysetDataKey key that
// wrapped a data key, read from the Tink output prefix of its wrapped
// bytes (either format); it reads no key material.
func WrappedBy(wrapped []byte) (string, error) {
	id, err := kekID(wrapped)
	if err != nil {
		return "", err
	}
	return keyIDHex(id), nil
}

// kekID returns the KEK key id in the Tink output prefix of wrapped bytes:
// in v2 it starts the ciphertext right after the version byte, in v1 it
// starts the EncryptedKeyset's ciphertext. It authenticates nothing.
func kekID(wrapped []byte) (uint32, error) {
	if len(wrapped) < 1 {
		return 0, fmt.Errorf("%w: unknown wrapping format", ErrDecrypt)
	}
	var ct []byte
	switch wrapped[0] {
	case wrappedV2:
		ct = wrapped[1:]
	case wrappedV1:
		var ek tinkpb.EncryptedKeyset
		if err := proto.Unmarshal(wrapped[1:], &ek); err != nil {
			return 0, fmt.Errorf("%w: malformed wrapped data key", ErrDecrypt)
		}
		ct = ek.GetEncryptedKeyset()
	default:
		return 0, fmt.Errorf("%w: unknown wrapping format", ErrDecrypt)
	}
	if len(ct) < tinkPrefixSize || ct[0] != tinkStartByte {
		return 0, fmt.Errorf("%w: wrapped data key has no key id prefix", ErrDecrypt)
	}
	return binary.BigEndian.Uint32(ct[1:tinkPrefixSize]), nil
}

// Rewrap re-wraps the data key id in format v2 under the primary key of
// KeysetDataKey: v1 bytes (under any KEK key) and v2 bytes under an older
// KEK key change; changed is false (and out nil) for v2 bytes the primary
// already wraps, which Rewrap returns without decrypting them. The data
// key itself is unchanged, so every field sealed with it still opens; once
// no stored key is wrapped by an old KeysetDataKey key, that key can be
// destroyed, and copies of the key store made earlier (WAL segments,
// backups) become unreadable with the keysets.
func (d *DataKeys) Rewrap(id string, wrapped []byte) (out []byte, changed bool, err error) {
	if !validDataKeyID(id) {
		return nil, false, fmt.Errorf("failed to rewrap data key: malformed id")
	}
	kid, err := kekID(wrapped)
	if err != nil {
		return nil, false, fmt.Errorf("failed to rewrap data key %s: %w", id, err)
	}
	// One state for the check, the unwrap and the wrap: a rotation in
	// between must not leave the key under the key it was checked against.
	st := d.keysets.state.Load()
	if wrapped[0] == wrappedV2 && kid == primaryID(st.handles[KeysetDataKey]) {
		return nil, false, nil
	}
	raw, err := unwrapKeyBytes(st.kek, id, wrapped)
	if err != nil {
		return nil, false, err
	}
	defer clear(raw)
	out, err = wrapDataKey(st.kek, id, raw)
	if err != nil {
		return nil, false, err
	}
	return out, true, nil
}

// ErrKeyNeeded is returned by RetireOldKeys for a keyset whose old keys
// still protect something paytrail cannot rewrite.
var ErrKeyNeeded = errors.New("old keys still needed")

// RetireOldKeys deletes every key of KeysetDataKey but the primary from
// the keyset (the stored file is replaced atomically) and returns their
// ids. Call it only once every stored data key is wrapped by the primary
// (the re-wrap after a rotation is done): a data key still wrapped by a
// deleted key can never be unwrapped again. Copies of the key store made
// before the re-wrap (WAL segments and tables on old disks, backups) are
// then unreadable with these keysets.
//
// Only KeysetDataKey can be retired: old signer keys verify checkpoints
// already issued, and old token and blind keys find earlier cardholders
// (ErrKeyNeeded).
func (k *Keysets) RetireOldKeys(ctx context.Context, name string) ([]string, error) {
	if name != KeysetDataKey {
		return nil, fmt.Errorf("failed to retire keys of %s: %w (only %s keys can be retired)", name, ErrKeyNeeded, KeysetDataKey)
	}
	k.rotateMu.Lock()
	defer k.rotateMu.Unlock()
	cur := k.state.Load()
	mgr := keyset.NewManagerFromHandle(cur.handles[name])
	primary := primaryID(cur.handles[name])
	var retired []string
	created := make(map[uint32]time.Time)
	for _, ki := range cur.handles[name].KeysetInfo().GetKeyInfo() {
		id := ki.GetKeyId()
		if id == primary {
			created[id] = cur.created[name][id]
			continue
		}
		if err := mgr.Delete(id); err != nil {
			return nil, fmt.Errorf("failed to delete key %s of %s: %w", keyIDHex(id), name, err)
		}
		retired = append(retired, keyIDHex(id))
	}
	if len(retired) == 0 {
		return nil, nil
	}
	h, err := mgr.Handle()
	if err != nil {
		return nil, fmt.Errorf("failed to make keyset %s: %w", name, err)
	}
	if err := writeKeyset(ctx, k.store, name, h, created, k.master, true); err != nil {
		return nil, err
	}
	handles := maps.Clone(cur.handles)
	allCreated := maps.Clone(cur.created)
	handles[name], allCreated[name] = h, created
	st, err := newKeysetState(handles, allCreated)
	if err != nil {
		return nil, err
	}
	k.state.Store(st)
	return retired, nil
}
