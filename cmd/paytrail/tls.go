package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
)

// certHolder holds the certificate serve presents. It is loaded at start
// and again on every SIGHUP; a reload that fails keeps the certificate in
// use, so a botched renewal never takes the service down.
type certHolder struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
}

// load reads the certificate and key files and, if they form a valid pair,
// makes them the one served.
func (h *certHolder) load() (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(h.certFile, h.keyFile)
	if err != nil {
		// The tls error names the files and what is wrong with them;
		// it never includes key bytes.
		return nil, fmt.Errorf("failed to load TLS certificate: %w", err)
	}
	h.cert.Store(&c)
	return &c, nil
}

// getCertificate is tls.Config.GetCertificate: every handshake takes the
// current certificate, so a reload applies to new connections at once.
func (h *certHolder) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return h.cert.Load(), nil
}

// newServerTLS returns serve's TLS configuration, or nil for plain HTTP
// when tc names no certificate. TLS 1.2 is the oldest version accepted
// (PCI DSS 4.2.1: strong cryptography in transit). With a client CA,
// every connection must present a client certificate that CA signed.
func newServerTLS(tc tlsConfig) (*tls.Config, *certHolder, error) {
	switch {
	case tc.CertFile == "" && tc.KeyFile == "" && tc.ClientCAFile == "":
		return nil, nil, nil
	case tc.CertFile == "" || tc.KeyFile == "":
		return nil, nil, usageError{"tls needs both a certificate and its key (tls.cert_file and tls.key_file, or --tls-cert and --tls-key)", ""}
	}
	if err := checkKeyFileMode(tc.KeyFile); err != nil {
		return nil, nil, err
	}
	h := &certHolder{certFile: tc.CertFile, keyFile: tc.KeyFile}
	if _, err := h.load(); err != nil {
		return nil, nil, err
	}
	conf := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: h.getCertificate,
		// api.Server serves HTTP/1.1 on the listener it is given.
		NextProtos: []string{"http/1.1"},
	}
	if tc.ClientCAFile != "" {
		pem, err := os.ReadFile(tc.ClientCAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("failed to read tls client CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("failed to read tls client CA file %s: no PEM certificate in it", tc.ClientCAFile)
		}
		conf.ClientCAs = pool
		conf.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return conf, h, nil
}

// checkKeyFileMode refuses a TLS private key file that others (not the
// owner, not its group) may read; a key readable by its group, as with
// Debian's ssl-cert group, is accepted.
func checkKeyFileMode(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("failed to load TLS certificate: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o007 != 0 {
		return hinted{fmt.Errorf("tls key file %s has mode %04o: anyone on the machine can read it", path, perm),
			[]string{"chmod 600 " + path}}
	}
	return nil
}

// reloadOnSignal re-reads the certificate on each value from reload until
// ctx ends, and logs the outcome.
func reloadOnSignal(ctx context.Context, reload <-chan os.Signal, h *certHolder, logger *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-reload:
			err := checkKeyFileMode(h.keyFile)
			var c *tls.Certificate
			if err == nil {
				c, err = h.load()
			}
			if err != nil {
				logger.Error("TLS certificate reload failed; still serving the previous certificate", "err", err.Error())
				continue
			}
			logger.Info("TLS certificate reloaded", "cert", h.certFile, "subject", c.Leaf.Subject.String(), "not_after", c.Leaf.NotAfter)
		}
	}
}
