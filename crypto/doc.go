// Package crypto holds every use of Tink in paytrail: the master key, the
// keysets it wraps, PAN tokenization, blind indexes and keyed digests, the
// checkpoint signer, and the data keys (one per payment event) that encrypt
// personal fields. No other paytrail package imports Tink; callers use the
// concrete types exported here and declare their own interfaces.
//
// # Key hierarchy
//
//	master key (file or HashiCorp Vault transit)        one per deployment
//	  └─ keysets in <data>/keysets/, each a file wrapped by the master
//	       token    HMAC-SHA256 PRF: PAN tokens
//	       blind    HMAC-SHA256 PRF: blind indexes and keyed digests
//	       signer   Ed25519 (raw signatures): checkpoint notes
//	       datakey  AES-256-GCM: wraps the subject data keys
//	                  └─ data keys, AES-256-GCM, one per payment event,
//	                     wrapped bytes (66, see below) kept by the
//	                     caller's key store
//
// The master key is used only when keysets are created, loaded or rotated,
// so a remote master (Vault) is contacted at startup and on rotation, never
// on the request path. Subject data keys are wrapped by the "datakey"
// keyset rather than directly by the master for the same reason: a new
// event or a cache miss must not cost a KMS round trip.
//
// Rotation ([Keysets.Rotate]) adds a new primary key to a keyset and keeps
// the old keys, so everything produced earlier still verifies, decrypts or
// can be searched for. Rotating "token" or "blind" changes the tokens and
// indexes produced from then on; use [Keysets.Tokens] and
// [Keysets.BlindIndexes] to search under every key.
//
// Crypto-shredding: destroying a subject's wrapped data key in the key store
// (and calling [DataKeys.Forget]) makes every ciphertext sealed under it
// unrecoverable. Nothing in this package keeps a copy other than the bounded
// in-memory cache that Forget evicts.
//
// # Files
//
// The master key file written by [CreateMasterFile] is a JSON object, mode
// 0600:
//
//	{"paytrail_master_key":1,"aes256gcm":"<standard base64 of 32 random bytes>"}
//
// It is turned into a Tink AES-256-GCM AEAD (no output prefix) with Tink's
// key-object API. It is a raw key, not a Tink keyset, so that no cleartext
// keyset ever exists on disk.
//
// Each keyset file <data>/keysets/<name>.json, mode 0600, is a JSON object
//
//	{"paytrail_keyset":1,"name":"token","created":{"<key id hex>":"<RFC 3339>"},
//	 "encrypted_keyset":{<Tink JSON EncryptedKeyset>}}
//
// where encrypted_keyset is written by Tink's keyset.Handle.WriteWithContext
// under the master AEAD with associated data "paytrail keyset <name>", so a
// keyset file cannot be swapped for another one. "created" is informational,
// not secret and not authenticated. Files are replaced atomically (temporary
// file, fsync, rename, fsync of the directory).
//
// # Wrapped data keys
//
// The key store holds, under each data key id, the key's wrapped bytes.
// Their first byte names the format. [DataKeys.New] writes v2; both are
// read, so data dirs made before v2 open unchanged, and [DataKeys.Rewrap]
// (the re-wrap after a datakey rotation) turns v1 into v2:
//
//	v2  0x02 || datakey AEAD ciphertext of the 32 key bytes          66 bytes
//	       = 0x02 || 0x01 || 4-byte KEK key id || 12-byte nonce
//	              || 32-byte encrypted key || 16-byte tag
//	    associated data: "paytrail/data-key-wrap/v2", data key id
//	v1  0x01 || Tink EncryptedKeyset (binary proto) of a one-key keyset,
//	    encrypted by the datakey AEAD                          about 145 bytes
//	    associated data: "paytrail/data-key-wrap/v1", data key id
//
// The associated data is encoded as described below. Its label differs
// between the formats, so bytes of one never authenticate as the other,
// and the id in it keeps bytes stored under one id from unwrapping under
// another. Either way the KEK key id is the Tink output prefix of the
// ciphertext, so [WrappedBy] reads it without decrypting. A v2 key is
// turned into an AES-256-GCM AEAD (no output prefix, 12-byte nonce,
// 16-byte tag) with Tink's key-object API: the same primitive a v1 keyset
// holds, so a field sealed under a key opens whichever format wraps it.
// Wrapped bytes of any other length, version or content fail with
// [ErrDecrypt].
//
// # Formats of derived values
//
//	PAN token     tok_<8 hex: key id>_<base64url, no padding, of a 32-byte PRF output>
//	blind index   bi_<8 hex: key id>_<base64url, no padding, of a 32-byte PRF output>
//	data key id   dk_<32 hex>
//	digest        4-byte big-endian key id || 32-byte PRF output
//	ciphertext    12-byte nonce || AES-GCM ciphertext || 16-byte tag
//
// Every PRF input and every associated data is the concatenation of
// length-prefixed parts (4-byte big-endian length, then the bytes), the
// first part being a fixed domain label, so no two different inputs encode
// the same bytes and no value produced for one purpose is valid for another.
//
// # Errors
//
// Errors never contain a PAN, a plaintext, a ciphertext or key material.
// Callers branch on [ErrWrongMasterKey], [ErrNoKeysets], [ErrCorruptKeyset],
// [ErrInvalidPAN], [ErrDecrypt] and [ErrDataKeyDestroyed] with errors.Is.
//
// # Backwards compatibility
//
// Tokens, blind indexes, digests and ciphertexts are stored by the ledger
// for years. Their encodings and domain labels must never change in place;
// a new encoding needs a new label (…/v2) and must keep reading the old one.
package crypto
