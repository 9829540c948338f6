package crypto

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/aead/aesgcm"
	"github.com/tink-crypto/tink-go/v2/key"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/prf"
	"github.com/tink-crypto/tink-go/v2/prf/hmacprf"
	"github.com/tink-crypto/tink-go/v2/signature"
	"github.com/tink-crypto/tink-go/v2/signature/ed25519"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// Names of the keysets kept in the keysets directory, one file
// <name>.json each.
const (
	// KeysetToken is the HMAC-SHA256 PRF keyset for PAN tokens.
	KeysetToken = "token"
	// KeysetBlind is the HMAC-SHA256 PRF keyset for blind indexes and keyed
	// digests (a different key from KeysetToken).
	KeysetBlind = "blind"
	// KeysetSigner is the Ed25519 keyset (raw 64-byte signatures) that signs
	// checkpoints.
	KeysetSigner = "signer"
	// KeysetDataKey is the AES-256-GCM keyset that wraps subject data keys.
	KeysetDataKey = "datakey"
)

// KeysetNames returns the names of all keysets, in the order Status lists
// them.
func KeysetNames() []string {
	return []string{KeysetToken, KeysetBlind, KeysetSigner, KeysetDataKey}
}

const (
	// keysetFileVersion is the value of "paytrail_keyset" in a keyset file.
	keysetFileVersion = 1
	// maxKeysetFileSize caps what LoadKeysets reads. A keyset file with a
	// hundred rotations is well under 64 KiB.
	maxKeysetFileSize = 1 << 20
	// keysetADPrefix, followed by the keyset name, is the associated data
	// under which the master wraps a keyset, so that the file of one keyset
	// cannot be passed off as another's.
	keysetADPrefix = "paytrail keyset "
)

// keysetParameters returns the Tink parameters every key of keyset name has.
// New keys are generated from them and loaded keys are checked against them,
// so a keyset file holding a different kind of key fails to load.
func keysetParameters(name string) (key.Parameters, error) {
	switch name {
	case KeysetToken, KeysetBlind:
		return hmacprf.NewParameters(prfKeySize, hmacprf.SHA256)
	case KeysetSigner:
		p, err := ed25519.NewParameters(ed25519.VariantNoPrefix)
		return &p, err
	case KeysetDataKey:
		// Tink output prefix: a wrapped data key names the KEK key that
		// wrapped it, so KEK rotation needs no trial decryption.
		return aesgcm.NewParameters(aesgcm.ParametersOpts{
			KeySizeInBytes: 32, IVSizeInBytes: 12, TagSizeInBytes: 16, Variant: aesgcm.VariantTink,
		})
	default:
		return nil, fmt.Errorf("unknown keyset %q (want one of %s)", name, strings.Join(KeysetNames(), ", "))
	}
}

// prfKeySize is the HMAC key size of the PRF keysets.
const prfKeySize = 32

// Keysets holds the loaded keysets. It is safe for concurrent use; Rotate
// swaps in the new keys without blocking readers.
type Keysets struct {
	store  KeysetStorage
	master *Master

	rotateMu sync.Mutex // serializes Rotate
	state    atomic.Pointer[keysetState]
}

// keysetState is an immutable snapshot of all keysets and the primitives
// made from them.
type keysetState struct {
	handles map[string]*keyset.Handle
	created map[string]map[uint32]time.Time

	token  prfKeys
	blind  prfKeys
	signer tink.Signer
	pubs   []signerPublicKey // enabled signer keys, primary first
	kek    tink.AEAD
}

// prfKeys is a PRF keyset's enabled keys, primary first.
type prfKeys struct {
	ids  []uint32
	prfs map[uint32]prf.PRF
}

// signerPublicKey is one Ed25519 public key of the signer keyset.
type signerPublicKey struct {
	id  uint32
	pub []byte
}

// InitKeysets creates every missing keyset file in dir (created with mode
// 0700 if needed), each with one fresh key, wrapped by m, mode 0600, fsynced.
// Existing files are kept untouched, so InitKeysets is idempotent. It then
// loads all keysets once to check them, so an existing keyset written under
// another master gives ErrWrongMasterKey here.
func InitKeysets(ctx context.Context, dir string, m *Master) error {
	st, err := OpenKeysetDir(dir)
	if err != nil {
		return err
	}
	return InitKeysetsIn(ctx, st, m)
}

// InitKeysetsIn is InitKeysets on any keyset storage.
func InitKeysetsIn(ctx context.Context, st KeysetStorage, m *Master) error {
	for _, name := range KeysetNames() {
		_, err := st.ReadKeyset(ctx, name)
		if err == nil {
			continue
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("failed to check keyset %s: %w", name, err)
		}
		h, err := newKeyset(name, nil)
		if err != nil {
			return err
		}
		created := map[uint32]time.Time{primaryID(h): now()}
		err = writeKeyset(ctx, st, name, h, created, m, false)
		if errors.Is(err, fs.ErrExist) {
			continue // created concurrently; kept, and checked below
		}
		if err != nil {
			return err
		}
	}
	if _, err := LoadKeysetsFrom(ctx, st, m); err != nil {
		return err
	}
	return nil
}

// LoadKeysets reads and decrypts every keyset in dir with m. It returns an
// error wrapping ErrNoKeysets (and fs.ErrNotExist) when a keyset file is
// missing, ErrWrongMasterKey when one does not decrypt under m, and
// ErrCorruptKeyset when one decrypts to something paytrail did not write.
// A keyset file that group or others may access (mode wider than 0600) is
// refused.
func LoadKeysets(ctx context.Context, dir string, m *Master) (*Keysets, error) {
	st, err := OpenKeysetDir(dir)
	if err != nil {
		return nil, err
	}
	return LoadKeysetsFrom(ctx, st, m)
}

// LoadKeysetsFrom is LoadKeysets on any keyset storage; Rotate writes to
// the same storage.
func LoadKeysetsFrom(ctx context.Context, st KeysetStorage, m *Master) (*Keysets, error) {
	handles := make(map[string]*keyset.Handle)
	created := make(map[string]map[uint32]time.Time)
	for _, name := range KeysetNames() {
		h, c, err := readKeyset(ctx, st, name, m)
		if err != nil {
			return nil, err
		}
		handles[name] = h
		created[name] = c
	}
	state, err := newKeysetState(handles, created)
	if err != nil {
		return nil, err
	}
	k := &Keysets{store: st, master: m}
	k.state.Store(state)
	return k, nil
}

// Rotate adds a fresh key to keyset name and makes it the primary; old keys
// stay enabled so that everything made with them still verifies, decrypts
// or can be searched for. The keyset in the storage k was loaded from is
// replaced atomically before the new key is used; from then on every call
// on k (and on the DataKeys and note signers made from it) uses the new
// key, without blocking readers. Other processes that loaded the same
// storage see the new key only when they call LoadKeysets again.
//
// Rotating KeysetToken or KeysetBlind changes every token, blind index and
// digest made from then on; callers must search with Tokens and
// BlindIndexes, and the operator should not rotate them casually.
func (k *Keysets) Rotate(ctx context.Context, name string) error {
	if _, err := keysetParameters(name); err != nil {
		return fmt.Errorf("failed to rotate: %w", err)
	}
	k.rotateMu.Lock()
	defer k.rotateMu.Unlock()

	cur := k.state.Load()
	h, err := newKeyset(name, cur.handles[name])
	if err != nil {
		return err
	}
	created := make(map[uint32]time.Time, len(cur.created[name])+1)
	for id, t := range cur.created[name] {
		created[id] = t
	}
	created[primaryID(h)] = now()
	if err := writeKeyset(ctx, k.store, name, h, created, k.master, true); err != nil {
		return err
	}

	handles := make(map[string]*keyset.Handle, len(cur.handles))
	allCreated := make(map[string]map[uint32]time.Time, len(cur.created))
	for n := range cur.handles {
		handles[n] = cur.handles[n]
		allCreated[n] = cur.created[n]
	}
	handles[name] = h
	allCreated[name] = created
	st, err := newKeysetState(handles, allCreated)
	if err != nil {
		return err
	}
	k.state.Store(st)
	return nil
}

// KeysetStatus describes one keyset without any key material.
type KeysetStatus struct {
	Name string      `json:"name"`
	Keys []KeyStatus `json:"keys"`
}

// KeyStatus describes one key of a keyset without any key material.
type KeyStatus struct {
	// ID is the Tink key id as 8 lowercase hex digits, as it appears in
	// tokens and blind indexes.
	ID      string `json:"id"`
	Primary bool   `json:"primary"`
	// Status is "enabled", "disabled" or "destroyed".
	Status string `json:"status"`
	// Type is the Tink key type URL.
	Type string `json:"type"`
	// Created is when paytrail generated the key; zero if unknown.
	Created time.Time `json:"created,omitzero"`
}

// Status lists every keyset and its keys, in KeysetNames order. It is built
// from Tink's KeysetInfo, which holds no key material.
func (k *Keysets) Status() []KeysetStatus {
	st := k.state.Load()
	out := make([]KeysetStatus, 0, len(st.handles))
	for _, name := range KeysetNames() {
		info := st.handles[name].KeysetInfo()
		ks := KeysetStatus{Name: name}
		for _, ki := range info.GetKeyInfo() {
			ks.Keys = append(ks.Keys, KeyStatus{
				ID:      keyIDHex(ki.GetKeyId()),
				Primary: ki.GetKeyId() == info.GetPrimaryKeyId(),
				Status:  strings.ToLower(ki.GetStatus().String()),
				Type:    ki.GetTypeUrl(),
				Created: st.created[name][ki.GetKeyId()],
			})
		}
		out = append(out, ks)
	}
	return out
}

// newKeyset returns a keyset for name with a fresh primary key added to the
// keys of prev (which may be nil).
func newKeyset(name string, prev *keyset.Handle) (*keyset.Handle, error) {
	params, err := keysetParameters(name)
	if err != nil {
		return nil, fmt.Errorf("failed to make keyset: %w", err)
	}
	mgr := keyset.NewManager()
	if prev != nil {
		mgr = keyset.NewManagerFromHandle(prev)
	}
	id, err := mgr.AddNewKeyFromParameters(params)
	if err != nil {
		return nil, fmt.Errorf("failed to generate key for keyset %s: %w", name, err)
	}
	if err := mgr.SetPrimary(id); err != nil {
		return nil, fmt.Errorf("failed to set primary key of keyset %s: %w", name, err)
	}
	h, err := mgr.Handle()
	if err != nil {
		return nil, fmt.Errorf("failed to make keyset %s: %w", name, err)
	}
	return h, nil
}

// keysetFile is the JSON form of a keyset file.
type keysetFile struct {
	Version         int                  `json:"paytrail_keyset"`
	Name            string               `json:"name"`
	Created         map[string]time.Time `json:"created"`
	EncryptedKeyset json.RawMessage      `json:"encrypted_keyset"`
}

// writeKeyset wraps h with m and stores it as keyset name (see
// KeysetStorage.WriteKeyset for replace). Before writing it decrypts what it
// is about to write, so a misbehaving master can never replace a good file
// with one that does not load.
func writeKeyset(ctx context.Context, st KeysetStorage, name string, h *keyset.Handle, created map[uint32]time.Time, m *Master, replace bool) error {
	data, err := encodeKeyset(ctx, name, h, created, m)
	if err != nil {
		return err
	}
	return st.WriteKeyset(ctx, name, data, replace)
}

// encodeKeyset wraps h with m into the bytes of a keyset file, and checks
// that they load again.
func encodeKeyset(ctx context.Context, name string, h *keyset.Handle, created map[uint32]time.Time, m *Master) ([]byte, error) {
	var enc bytes.Buffer
	if err := h.WriteWithContext(ctx, keyset.NewJSONWriter(&enc), m.aead, []byte(keysetADPrefix+name)); err != nil {
		return nil, fmt.Errorf("failed to wrap keyset %s with the %s master key: %w", name, m.kind, err)
	}
	kf := keysetFile{
		Version:         keysetFileVersion,
		Name:            name,
		Created:         make(map[string]time.Time, len(created)),
		EncryptedKeyset: enc.Bytes(),
	}
	for id, t := range created {
		kf.Created[keyIDHex(id)] = t
	}
	data, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("failed to encode keyset %s: %w", name, err)
	}
	data = append(data, '\n')
	if _, _, err := parseKeyset(ctx, name, data, m); err != nil {
		return nil, fmt.Errorf("failed to check keyset %s before writing it: %w", name, err)
	}
	return data, nil
}

// readKeyset reads keyset name from st and unwraps it with m.
func readKeyset(ctx context.Context, st KeysetStorage, name string, m *Master) (*keyset.Handle, map[uint32]time.Time, error) {
	data, err := st.ReadKeyset(ctx, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("failed to load keyset %s from %s: %w", name, st, ErrNoKeysets)
	}
	if err != nil {
		return nil, nil, err
	}
	h, created, err := parseKeyset(ctx, name, data, m)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to load keyset %s from %s: %w", name, st, err)
	}
	return h, created, nil
}

// parseKeyset decodes and unwraps the contents of a keyset file.
func parseKeyset(ctx context.Context, name string, data []byte, m *Master) (*keyset.Handle, map[uint32]time.Time, error) {
	var kf keysetFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&kf); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrCorruptKeyset, err)
	}
	if dec.More() {
		return nil, nil, fmt.Errorf("%w: trailing data", ErrCorruptKeyset)
	}
	if kf.Version != keysetFileVersion {
		return nil, nil, fmt.Errorf("%w: unsupported version %d", ErrCorruptKeyset, kf.Version)
	}
	if kf.Name != name {
		return nil, nil, fmt.Errorf("%w: file holds keyset %q", ErrCorruptKeyset, kf.Name)
	}
	rec := &recordingAEAD{a: m.aead}
	h, err := keyset.ReadWithContext(ctx, keyset.NewJSONReader(bytes.NewReader(kf.EncryptedKeyset)), rec, []byte(keysetADPrefix+name))
	switch {
	case err == nil:
	case rec.decryptErr != nil && errors.Is(rec.decryptErr, errAuthFailed):
		return nil, nil, fmt.Errorf("%w: the %s master key does not decrypt it: %v", ErrWrongMasterKey, m.kind, rec.decryptErr)
	case rec.decryptErr != nil:
		// Transport or permission failure of a remote master.
		return nil, nil, fmt.Errorf("failed to unwrap with the %s master key: %w", m.kind, rec.decryptErr)
	default:
		// Tink formats its errors with %v; nothing to unwrap.
		return nil, nil, fmt.Errorf("%w: %v", ErrCorruptKeyset, err)
	}
	params, err := keysetParameters(name)
	if err != nil {
		return nil, nil, err
	}
	for i := range h.Len() {
		e, err := h.Entry(i)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrCorruptKeyset, err)
		}
		if !e.Key().Parameters().Equal(params) {
			return nil, nil, fmt.Errorf("%w: key %s is not of the kind keyset %s holds", ErrCorruptKeyset, keyIDHex(e.KeyID()), name)
		}
	}
	created := make(map[uint32]time.Time, len(kf.Created))
	for s, t := range kf.Created {
		id, err := strconv.ParseUint(s, 16, 32)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: bad key id %q in created", ErrCorruptKeyset, s)
		}
		created[uint32(id)] = t
	}
	return h, created, nil
}

// recordingAEAD passes calls to a master AEAD and remembers the result of
// the decryption, because Tink's keyset.Read formats the error with %v and
// we need to tell a wrong master key from an unreachable one.
type recordingAEAD struct {
	a          tink.AEADWithContext
	decryptErr error
}

func (r *recordingAEAD) EncryptWithContext(ctx context.Context, plaintext, associatedData []byte) ([]byte, error) {
	return r.a.EncryptWithContext(ctx, plaintext, associatedData)
}

func (r *recordingAEAD) DecryptWithContext(ctx context.Context, ciphertext, associatedData []byte) ([]byte, error) {
	pt, err := r.a.DecryptWithContext(ctx, ciphertext, associatedData)
	r.decryptErr = err
	return pt, err
}

// newKeysetState makes the primitives for a set of keyset handles.
func newKeysetState(handles map[string]*keyset.Handle, created map[string]map[uint32]time.Time) (*keysetState, error) {
	st := &keysetState{handles: handles, created: created}
	var err error
	if st.token, err = newPRFKeys(handles[KeysetToken]); err != nil {
		return nil, fmt.Errorf("failed to load keyset %s: %w", KeysetToken, err)
	}
	if st.blind, err = newPRFKeys(handles[KeysetBlind]); err != nil {
		return nil, fmt.Errorf("failed to load keyset %s: %w", KeysetBlind, err)
	}
	if st.signer, err = signature.NewSigner(handles[KeysetSigner]); err != nil {
		return nil, fmt.Errorf("failed to load keyset %s: %w", KeysetSigner, err)
	}
	if st.pubs, err = signerPublicKeys(handles[KeysetSigner]); err != nil {
		return nil, fmt.Errorf("failed to load keyset %s: %w", KeysetSigner, err)
	}
	if st.kek, err = aead.New(handles[KeysetDataKey]); err != nil {
		return nil, fmt.Errorf("failed to load keyset %s: %w", KeysetDataKey, err)
	}
	return st, nil
}

// newPRFKeys returns the enabled PRFs of h, primary first, then in keyset
// order.
func newPRFKeys(h *keyset.Handle) (prfKeys, error) {
	set, err := prf.NewPRFSet(h)
	if err != nil {
		return prfKeys{}, err
	}
	ids := []uint32{set.PrimaryID}
	for i := range h.Len() {
		e, err := h.Entry(i)
		if err != nil {
			return prfKeys{}, err
		}
		if _, ok := set.PRFs[e.KeyID()]; ok && e.KeyID() != set.PrimaryID {
			ids = append(ids, e.KeyID())
		}
	}
	return prfKeys{ids: ids, prfs: set.PRFs}, nil
}

// signerPublicKeys returns the enabled Ed25519 public keys of h, primary
// first, then in keyset order.
func signerPublicKeys(h *keyset.Handle) ([]signerPublicKey, error) {
	pub, err := h.Public()
	if err != nil {
		return nil, err
	}
	var out []signerPublicKey
	for i := range pub.Len() {
		e, err := pub.Entry(i)
		if err != nil {
			return nil, err
		}
		if e.KeyStatus() != keyset.Enabled {
			continue
		}
		pk, ok := e.Key().(*ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("key %s is %T, not an Ed25519 public key", keyIDHex(e.KeyID()), e.Key())
		}
		k := signerPublicKey{id: e.KeyID(), pub: pk.KeyBytes()}
		if e.IsPrimary() {
			out = append([]signerPublicKey{k}, out...)
		} else {
			out = append(out, k)
		}
	}
	return out, nil
}

// primaryID returns the primary key id of h, which always has one.
func primaryID(h *keyset.Handle) uint32 {
	return h.KeysetInfo().GetPrimaryKeyId()
}

// keyIDHex formats a Tink key id as 8 lowercase hex digits.
func keyIDHex(id uint32) string {
	return fmt.Sprintf("%08x", id)
}

// now is the creation time recorded for new keys.
func now() time.Time {
	return time.Now().UTC().Truncate(time.Second)
}
