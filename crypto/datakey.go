package crypto

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/tink-crypto/tink-go/v2/aead/aesgcm"
	"github.com/tink-crypto/tink-go/v2/insecuresecretdataaccess"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/secretdata"
	"github.com/tink-crypto/tink-go/v2/tink"
)

const (
	// DefaultDataKeyCacheSize is the number of unwrapped data keys NewDataKeys
	// keeps when given a size ≤ 0.
	DefaultDataKeyCacheSize = 10000

	dataKeyIDPrefix = "dk_"
	dataKeyIDBytes  = 16
	// dataKeySize is the length of a data key: AES-256.
	dataKeySize = 32

	// labelDataKeyWrapV1 and labelDataKeyWrapV2 start the associated data
	// under which a data key is wrapped, in the format of that version;
	// the data key id follows, so wrapped bytes stored under one id do not
	// unwrap under another, and bytes of one format never authenticate as
	// the other.
	labelDataKeyWrapV1 = "paytrail/data-key-wrap/v1"
	labelDataKeyWrapV2 = "paytrail/data-key-wrap/v2"
	// labelField starts the associated data of every field ciphertext.
	labelField = "paytrail/field/v1"

	// The first byte of wrapped data key bytes names their format (see
	// "Wrapped data keys" in doc.go).
	//
	// wrappedV1: a Tink EncryptedKeyset (binary proto) of a one-key
	// keyset, encrypted by KeysetDataKey. Written until issue 18 (about
	// 145 bytes, and a keyset parse per unwrap); still read.
	wrappedV1 = 0x01
	// wrappedV2: the KeysetDataKey ciphertext of the 32 key bytes,
	// 0x02 ‖ Tink prefix ‖ nonce ‖ encrypted key ‖ tag (wrappedV2Size bytes).
	wrappedV2 = 0x02

	// tinkPrefixSize is the length of the output prefix of every
	// KeysetDataKey ciphertext (VariantTink, enforced when keysets load):
	// tinkStartByte, then the KEK key id, 4 bytes big-endian.
	tinkPrefixSize = 5
	tinkStartByte  = 0x01
	// wrappedV2Size is the length of v2 wrapped bytes: version, prefix,
	// 12-byte nonce, key, 16-byte tag.
	wrappedV2Size = 1 + tinkPrefixSize + 12 + dataKeySize + 16
)

// KeyStore is where wrapped data keys live: the ledger's key store, a Pebble
// instance separate from the ledger. DataKeys only reads it; whoever calls
// DataKeys.New stores the wrapped bytes, and erasure deletes them.
type KeyStore interface {
	// Wrapped returns the wrapped key bytes for id, found=false if there are
	// none (destroyed or never stored). The caller does not modify them.
	Wrapped(ctx context.Context, id string) (wrapped []byte, found bool, err error)
}

// DataKeys makes and unwraps per-event AES-256-GCM data
// keys, and keeps the most recently used unwrapped keys in a bounded LRU
// cache. Keys are wrapped by the primary key of KeysetDataKey and unwrapped
// by whichever of its keys wrapped them, so rotating KeysetDataKey affects
// only new data keys. A DataKeys is safe for concurrent use.
type DataKeys struct {
	keysets *Keysets
	store   KeyStore
	cache   *lru.Cache[string, *DataKey]

	// mu guards forgets, a count of Forget calls. A Get that missed the
	// cache caches its key only if no Forget ran while it read the store,
	// so a key destroyed during the read is not brought back into memory.
	mu      sync.Mutex
	forgets uint64
}

// NewDataKeys returns a DataKeys that reads wrapped keys from store and
// caches up to cacheSize unwrapped keys (DefaultDataKeyCacheSize if
// cacheSize ≤ 0).
func NewDataKeys(k *Keysets, store KeyStore, cacheSize int) *DataKeys {
	if cacheSize <= 0 {
		cacheSize = DefaultDataKeyCacheSize
	}
	cache, err := lru.New[string, *DataKey](cacheSize)
	if err != nil {
		// lru.New fails only for a size ≤ 0, excluded above.
		panic(fmt.Sprintf("crypto: failed to make data key cache: %v", err))
	}
	return &DataKeys{keysets: k, store: store, cache: cache}
}

// New makes a fresh random data key and returns it, ready to use, with the
// wrapped bytes the caller must store under key.ID(). New does not touch the
// store or the cache: until the caller has stored the wrapped bytes, Get
// does not know the key. The id is "dk_" + 32 random hex digits; the key is
// 32 bytes from crypto/rand, and the wrapped bytes (format v2, 66 bytes)
// are its encryption by the primary key of KeysetDataKey, with associated
// data naming the id.
func (d *DataKeys) New() (*DataKey, []byte, error) {
	var rnd [dataKeyIDBytes]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, nil, fmt.Errorf("failed to make data key id: %w", err)
	}
	id := dataKeyIDPrefix + hex.EncodeToString(rnd[:])
	raw := make([]byte, dataKeySize)
	if _, err := rand.Read(raw); err != nil {
		return nil, nil, fmt.Errorf("failed to generate data key: %w", err)
	}
	defer clear(raw)
	k, err := newDataKey(id, raw)
	if err != nil {
		return nil, nil, err
	}
	wrapped, err := wrapDataKey(d.keysets.state.Load().kek, id, raw)
	if err != nil {
		return nil, nil, err
	}
	return k, wrapped, nil
}

// Get returns the data key id from the cache, or else reads its wrapped
// bytes from the store, unwraps them and caches the key. It returns an
// error wrapping ErrDataKeyDestroyed if the store has no such key, and
// ErrDecrypt if the wrapped bytes do not unwrap for this id (altered, or
// stored under another id).
func (d *DataKeys) Get(ctx context.Context, id string) (*DataKey, error) {
	if !validDataKeyID(id) {
		return nil, fmt.Errorf("failed to get data key: malformed id")
	}
	if k, ok := d.cache.Get(id); ok {
		return k, nil
	}
	d.mu.Lock()
	epoch := d.forgets
	d.mu.Unlock()

	wrapped, found, err := d.store.Wrapped(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("failed to read data key %s: %w", id, err)
	}
	if !found {
		return nil, fmt.Errorf("failed to get data key %s: %w", id, ErrDataKeyDestroyed)
	}
	k, err := d.unwrap(id, wrapped)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	if d.forgets == epoch {
		d.cache.Add(id, k)
	}
	d.mu.Unlock()
	return k, nil
}

// Remember caches k, a key this process just made with New, so that the
// next Get of its id reads no store (a cluster's key bucket is a network
// round trip away).
func (d *DataKeys) Remember(k *DataKey) {
	d.cache.Add(k.id, k)
}

// Forget evicts id from the cache. Call it after destroying the key in the
// store; a Get that raced with the destruction does not re-cache it.
func (d *DataKeys) Forget(id string) {
	d.mu.Lock()
	d.forgets++
	d.cache.Remove(id)
	d.mu.Unlock()
}

// unwrap turns wrapped bytes of either format into the data key id.
func (d *DataKeys) unwrap(id string, wrapped []byte) (*DataKey, error) {
	raw, err := unwrapKeyBytes(d.keysets.state.Load().kek, id, wrapped)
	if err != nil {
		return nil, err
	}
	defer clear(raw)
	return newDataKey(id, raw)
}

// wrapDataKey wraps raw, the key bytes of data key id, in format v2 under
// the primary key of kek.
func wrapDataKey(kek tink.AEAD, id string, raw []byte) ([]byte, error) {
	ct, err := kek.Encrypt(raw, encodeParts(labelDataKeyWrapV2, id))
	if err != nil {
		return nil, fmt.Errorf("failed to wrap data key %s: %w", id, err)
	}
	out := make([]byte, 0, 1+len(ct))
	out = append(out, wrappedV2)
	return append(out, ct...), nil
}

// unwrapKeyBytes returns the 32 key bytes of data key id from its wrapped
// bytes, in format v1 or v2, unwrapped by whichever key of kek wrapped
// them. Every failure wraps ErrDecrypt and names no key material. The
// caller owns (and may clear) the returned slice.
func unwrapKeyBytes(kek tink.AEAD, id string, wrapped []byte) ([]byte, error) {
	if len(wrapped) == 0 {
		return nil, fmt.Errorf("%w data key %s: unknown wrapping format", ErrDecrypt, id)
	}
	switch wrapped[0] {
	case wrappedV2:
		// Exact size first: a v2 wrapping holds one AES-256 key and
		// nothing else, so anything longer or shorter is refused before
		// any decryption is tried.
		if len(wrapped) != wrappedV2Size {
			return nil, fmt.Errorf("%w data key %s: wrapped key is %d bytes, want %d", ErrDecrypt, id, len(wrapped), wrappedV2Size)
		}
		raw, err := kek.Decrypt(wrapped[1:], encodeParts(labelDataKeyWrapV2, id))
		if err != nil {
			// Tink's message names no key material; keep it for diagnosis.
			return nil, fmt.Errorf("%w data key %s: %v", ErrDecrypt, id, err)
		}
		if len(raw) != dataKeySize {
			// Unreachable while the KEK has a 5-byte prefix and the size
			// check above holds; kept so a key of any other length is
			// never used, whatever the KEK's format.
			clear(raw)
			return nil, fmt.Errorf("%w data key %s: not an AES-256 key", ErrDecrypt, id)
		}
		return raw, nil
	case wrappedV1:
		return unwrapKeyBytesV1(kek, id, wrapped[1:])
	default:
		return nil, fmt.Errorf("%w data key %s: unknown wrapping format", ErrDecrypt, id)
	}
}

// unwrapKeyBytesV1 reads the body of v1 wrapped bytes: a Tink
// EncryptedKeyset that must hold exactly one AES-256-GCM key with the
// parameters of dataKeyParameters.
func unwrapKeyBytesV1(kek tink.AEAD, id string, body []byte) ([]byte, error) {
	h, err := keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(body)), kek, encodeParts(labelDataKeyWrapV1, id))
	if err != nil {
		// Tink's message names no key material; keep it for diagnosis.
		return nil, fmt.Errorf("%w data key %s: %v", ErrDecrypt, id, err)
	}
	params, err := dataKeyParameters()
	if err != nil {
		return nil, err
	}
	if h.Len() != 1 {
		return nil, fmt.Errorf("%w data key %s: want one key, got %d", ErrDecrypt, id, h.Len())
	}
	e, err := h.Primary()
	if err != nil || !e.Key().Parameters().Equal(params) {
		return nil, fmt.Errorf("%w data key %s: not an AES-256-GCM key", ErrDecrypt, id)
	}
	k, ok := e.Key().(*aesgcm.Key)
	if !ok {
		return nil, fmt.Errorf("%w data key %s: not an AES-256-GCM key", ErrDecrypt, id)
	}
	return k.KeyBytes().Data(insecuresecretdataaccess.Token{}), nil
}

// newDataKey makes data key id from its 32 key bytes with Tink's key-object
// API: AES-256-GCM, no output prefix, 12-byte nonce, 16-byte tag, the
// primitive a v1 one-key keyset gave, so a field sealed under either opens
// under the other. Tink copies raw; the caller may clear it.
func newDataKey(id string, raw []byte) (*DataKey, error) {
	params, err := dataKeyParameters()
	if err != nil {
		return nil, err
	}
	key, err := aesgcm.NewKey(secretdata.NewBytesFromData(raw, insecuresecretdataaccess.Token{}), 0, params)
	if err != nil {
		return nil, fmt.Errorf("failed to make data key %s: %w", id, err)
	}
	a, err := aesgcm.NewAEAD(key)
	if err != nil {
		return nil, fmt.Errorf("failed to make aead for data key %s: %w", id, err)
	}
	return &DataKey{id: id, aead: a}, nil
}

// dataKeyParameters are the parameters of every data key: AES-256-GCM,
// 12-byte random nonce, 16-byte tag, no output prefix (one key per data
// key id, so a key id prefix would carry nothing).
func dataKeyParameters() (*aesgcm.Parameters, error) {
	p, err := aesgcm.NewParameters(aesgcm.ParametersOpts{
		KeySizeInBytes: dataKeySize, IVSizeInBytes: 12, TagSizeInBytes: 16, Variant: aesgcm.VariantNoPrefix,
	})
	if err != nil {
		return nil, fmt.Errorf("failed to make data key parameters: %w", err)
	}
	return p, nil
}

// validDataKeyID reports whether id is "dk_" and 32 lowercase hex digits.
func validDataKeyID(id string) bool {
	if len(id) != len(dataKeyIDPrefix)+2*dataKeyIDBytes || id[:len(dataKeyIDPrefix)] != dataKeyIDPrefix {
		return false
	}
	for _, c := range []byte(id[len(dataKeyIDPrefix):]) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// DataKey is one event's AES-256-GCM key. It is safe for concurrent use.
type DataKey struct {
	id   string
	aead tink.AEAD
}

// ID returns the key's id, "dk_" + 32 hex digits.
func (k *DataKey) ID() string { return k.id }

// AD names what a ciphertext belongs to; it is authenticated but not
// encrypted. A ciphertext opens only with the AD it was sealed with, so it
// cannot be moved to another ledger, entry or field. All three are
// required.
type AD struct {
	Ledger string
	Entry  string
	Field  string
}

// encode returns the associated data bytes: the label and the three names,
// each length-prefixed.
func (a AD) encode() ([]byte, error) {
	if a.Ledger == "" || a.Entry == "" || a.Field == "" {
		return nil, fmt.Errorf("associated data must name ledger, entry and field")
	}
	return encodeParts(labelField, a.Ledger, a.Entry, a.Field), nil
}

// Seal encrypts plaintext bound to ad. The result is a 12-byte random
// nonce, the ciphertext and a 16-byte tag (len(plaintext)+28 bytes).
func (k *DataKey) Seal(ad AD, plaintext []byte) ([]byte, error) {
	b, err := ad.encode()
	if err != nil {
		return nil, fmt.Errorf("failed to seal field: %w", err)
	}
	ct, err := k.aead.Encrypt(plaintext, b)
	if err != nil {
		return nil, fmt.Errorf("failed to seal field %q with data key %s: %w", ad.Field, k.id, err)
	}
	return ct, nil
}

// Open decrypts a ciphertext made by Seal with the same ad. Any failure
// (wrong key, wrong ad, altered or truncated bytes) returns an error
// wrapping ErrDecrypt that names the field and key but holds no plaintext
// or ciphertext.
func (k *DataKey) Open(ad AD, ciphertext []byte) ([]byte, error) {
	b, err := ad.encode()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDecrypt, err)
	}
	pt, err := k.aead.Decrypt(ciphertext, b)
	if err != nil {
		return nil, fmt.Errorf("%w field %q of entry %q with data key %s", ErrDecrypt, ad.Field, ad.Entry, k.id)
	}
	return pt, nil
}
