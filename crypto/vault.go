package crypto

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

const (
	// vaultTimeout is the default HTTP timeout for Vault requests.
	vaultTimeout = 30 * time.Second
	// maxVaultResponse caps how much of a Vault response is read; a
	// wrapped keyset is a few hundred bytes.
	maxVaultResponse = 1 << 20
	// maxVaultErrorLen caps how much of Vault's error text goes into ours.
	maxVaultErrorLen = 200
)

// vaultAEAD is a tink.AEADWithContext backed by a HashiCorp Vault transit
// key. It makes the same requests as tink-go-hcvault's AEAD (the
// "associated_data" request parameter, ciphertexts kept as Vault's
// "vault:vN:…" strings), using only net/http: tink-go-hcvault needs
// github.com/hashicorp/vault/api and its dependencies, and that client reads
// VAULT_* environment variables, which this package must not do.
type vaultAEAD struct {
	client     *http.Client
	encryptURL string
	decryptURL string
	token      string
	namespace  string
}

// newVaultAEAD parses hcvault://HOST[:PORT]/MOUNT/keys/NAME (MOUNT may have
// several segments, as Vault allows).
func newVaultAEAD(u *url.URL, cfg MasterConfig) (*vaultAEAD, error) {
	const want = "want hcvault://HOST[:PORT]/MOUNT/keys/NAME"
	if cfg.VaultToken == "" {
		return nil, fmt.Errorf("failed to open vault master key: no vault token given")
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("failed to parse vault key uri: %s", want)
	}
	parts := strings.Split(u.EscapedPath(), "/")
	n := len(parts)
	if n < 4 || parts[0] != "" || parts[n-2] != "keys" {
		return nil, fmt.Errorf("failed to parse vault key uri: %s", want)
	}
	for _, p := range parts[1:] {
		if p == "" || p == "." || p == ".." {
			return nil, fmt.Errorf("failed to parse vault key uri: empty or relative path segment, %s", want)
		}
	}
	mount := strings.Join(parts[1:n-2], "/")
	name := parts[n-1]

	base := "https://" + u.Host
	if cfg.VaultAddress != "" {
		b, err := url.Parse(cfg.VaultAddress)
		if err != nil {
			return nil, fmt.Errorf("failed to parse vault address: %w", err)
		}
		if (b.Scheme != "http" && b.Scheme != "https") || b.Host == "" || (b.Path != "" && b.Path != "/") || b.User != nil {
			return nil, fmt.Errorf("failed to parse vault address: want http(s)://HOST[:PORT]")
		}
		base = b.Scheme + "://" + b.Host
	}
	client := cfg.VaultHTTPClient
	if client == nil {
		client = &http.Client{Timeout: vaultTimeout}
	}
	return &vaultAEAD{
		client:     client,
		encryptURL: base + "/v1/" + mount + "/encrypt/" + name,
		decryptURL: base + "/v1/" + mount + "/decrypt/" + name,
		token:      cfg.VaultToken,
		namespace:  cfg.VaultNamespace,
	}, nil
}

// vaultResponse is the part of a transit response we read.
type vaultResponse struct {
	Data struct {
		Ciphertext string `json:"ciphertext"`
		Plaintext  string `json:"plaintext"`
	} `json:"data"`
	Errors []string `json:"errors"`
}

// vaultError is a non-2xx answer from Vault.
type vaultError struct {
	status int
	msg    string
}

func (e *vaultError) Error() string {
	return fmt.Sprintf("vault answered %d: %s", e.status, e.msg)
}

// EncryptWithContext implements tink.AEADWithContext.
func (v *vaultAEAD) EncryptWithContext(ctx context.Context, plaintext, associatedData []byte) ([]byte, error) {
	resp, err := v.post(ctx, v.encryptURL, map[string]string{
		"plaintext":       base64.StdEncoding.EncodeToString(plaintext),
		"associated_data": base64.StdEncoding.EncodeToString(associatedData),
	})
	if err != nil {
		return nil, fmt.Errorf("failed to encrypt with vault: %w", err)
	}
	if !strings.HasPrefix(resp.Data.Ciphertext, "vault:") {
		return nil, fmt.Errorf("failed to encrypt with vault: response has no vault ciphertext")
	}
	return []byte(resp.Data.Ciphertext), nil
}

// DecryptWithContext implements tink.AEADWithContext. A 400 answer (Vault's
// answer to a ciphertext that does not authenticate or does not parse) is
// reported as errAuthFailed; anything else as a transport failure.
func (v *vaultAEAD) DecryptWithContext(ctx context.Context, ciphertext, associatedData []byte) ([]byte, error) {
	resp, err := v.post(ctx, v.decryptURL, map[string]string{
		"ciphertext":      string(ciphertext),
		"associated_data": base64.StdEncoding.EncodeToString(associatedData),
	})
	if ve := (*vaultError)(nil); errors.As(err, &ve) && ve.status == http.StatusBadRequest {
		return nil, fmt.Errorf("%w: %w", errAuthFailed, ve)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to decrypt with vault: %w", err)
	}
	// Vault leaves "plaintext" out when it is empty.
	pt, err := base64.StdEncoding.DecodeString(resp.Data.Plaintext)
	if err != nil {
		return nil, fmt.Errorf("failed to decrypt with vault: plaintext is not base64")
	}
	return pt, nil
}

// post sends one transit request and decodes the answer. It returns a
// *vaultError (unwrapped) for a non-2xx status.
func (v *vaultAEAD) post(ctx context.Context, u string, body map[string]string) (*vaultResponse, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Vault-Token", v.token)
	req.Header.Set("X-Vault-Request", "true")
	if v.namespace != "" {
		req.Header.Set("X-Vault-Namespace", v.namespace)
	}
	res, err := v.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxVaultResponse))
	if err != nil {
		return nil, fmt.Errorf("failed to read vault response: %w", err)
	}
	var vr vaultResponse
	jsonErr := json.Unmarshal(raw, &vr)
	if res.StatusCode/100 != 2 {
		msg := strings.Join(vr.Errors, "; ")
		if jsonErr != nil || msg == "" {
			msg = http.StatusText(res.StatusCode)
		}
		if len(msg) > maxVaultErrorLen {
			msg = msg[:maxVaultErrorLen] + "…"
		}
		return nil, &vaultError{status: res.StatusCode, msg: msg}
	}
	if jsonErr != nil {
		return nil, fmt.Errorf("failed to parse vault response: %w", jsonErr)
	}
	return &vr, nil
}
