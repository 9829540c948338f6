package crypto

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/tink-crypto/tink-go/v2/core/registry"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// vaultKMSClient exposes the Vault transit master key through Tink's KMS
// client interface, so OpenMaster obtains every KMS-backed master AEAD the
// same way Tink's own integrations (tink-go-gcpkms, tink-go-awskms,
// tink-go-hcvault) are used. Adding another KMS means adding another
// registry.KMSClient here. It is not registered globally (registry's global
// client list would be global state).
type vaultKMSClient struct {
	cfg MasterConfig
}

var _ registry.KMSClient = vaultKMSClient{}

// Supported reports whether keyURI is a Vault transit key URI.
func (c vaultKMSClient) Supported(keyURI string) bool {
	return strings.HasPrefix(keyURI, "hcvault://")
}

// GetAEAD returns the AEAD of the transit key named by keyURI. The value
// also implements tink.AEADWithContext, which OpenMaster uses.
func (c vaultKMSClient) GetAEAD(keyURI string) (tink.AEAD, error) {
	u, err := url.Parse(keyURI)
	if err != nil {
		return nil, fmt.Errorf("failed to parse vault key uri: %w", err)
	}
	v, err := newVaultAEAD(u, c.cfg)
	if err != nil {
		return nil, err
	}
	return contextFreeAEAD{v}, nil
}

// contextFreeAEAD adds tink.AEAD's context-free methods to a Vault AEAD.
type contextFreeAEAD struct{ *vaultAEAD }

func (a contextFreeAEAD) Encrypt(plaintext, associatedData []byte) ([]byte, error) {
	return a.EncryptWithContext(context.Background(), plaintext, associatedData)
}

func (a contextFreeAEAD) Decrypt(ciphertext, associatedData []byte) ([]byte, error) {
	return a.DecryptWithContext(context.Background(), ciphertext, associatedData)
}

// kmsClients lists the KMS integrations OpenMaster can use.
func kmsClients(cfg MasterConfig) []registry.KMSClient {
	return []registry.KMSClient{vaultKMSClient{cfg: cfg}}
}

// openKMSMaster finds the KMS client for uri and returns its AEAD.
func openKMSMaster(uri string, cfg MasterConfig) (tink.AEADWithContext, error) {
	for _, c := range kmsClients(cfg) {
		if !c.Supported(uri) {
			continue
		}
		a, err := c.GetAEAD(uri)
		if err != nil {
			return nil, err
		}
		wc, ok := a.(tink.AEADWithContext)
		if !ok {
			return nil, fmt.Errorf("failed to open master key: kms aead has no context support")
		}
		return wc, nil
	}
	return nil, fmt.Errorf("failed to open master key: no kms client supports this uri")
}
