package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a PEM certificate and key signed by the CA: a server
// certificate for 127.0.0.1, or a client certificate.
func (ca *testCA) issue(t *testing.T, cn string, serial int64, client bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func writeFile(t *testing.T, path string, b []byte) string {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// syncBuffer is an io.Writer safe for the server's goroutines and the
// test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// tlsServer is `paytrail serve` running in-process.
type tlsServer struct {
	addr           string
	stdout, stderr *syncBuffer
	stop           func() int
}

// startServe runs serve with args in-process until the test ends, and
// waits until it listens. reload, if not nil, is its SIGHUP channel.
func startServe(t *testing.T, reload <-chan os.Signal, getenv func(string) string, args ...string) *tlsServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &tlsServer{stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, env{args: append([]string{"serve"}, args...), getenv: getenv, stdout: s.stdout, stderr: s.stderr, reload: reload})
	}()
	var once sync.Once
	code := 0
	s.stop = func() int {
		once.Do(func() { cancel(); code = <-done })
		return code
	}
	t.Cleanup(func() { s.stop() })
	re := regexp.MustCompile(`listening on https://(\S+)`)
	deadline := time.Now().Add(scriptTimeout)
	for {
		if m := re.FindStringSubmatch(s.stdout.String()); m != nil {
			s.addr = m[1]
			return s
		}
		select {
		case c := <-done:
			done <- c
			t.Fatalf("serve exited with %d\nstdout:\n%s\nstderr:\n%s", c, s.stdout, s.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not listen within %s\nstderr:\n%s", scriptTimeout, s.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func noEnv(string) string { return "" }

// handshake connects to addr with conf and returns the server's leaf
// certificate, or the handshake error.
func handshake(addr string, conf *tls.Config) (*x509.Certificate, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: scriptTimeout}, "tcp", addr, conf)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	// A TLS 1.3 server reports a missing or bad client certificate after
	// the client's handshake completes: read until the alert arrives or
	// the request is answered.
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(string(b), "HTTP/1.1 200 ") {
		return nil, &net.OpError{Op: "read", Err: io.ErrUnexpectedEOF}
	}
	return c.ConnectionState().PeerCertificates[0], nil
}

// TestServeTLS: with a certificate configured, serve speaks HTTPS only,
// TLS 1.2 or newer, and takes a new certificate on SIGHUP; a failed reload
// keeps the old one.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "paytrail test CA")
	cert1, key1 := ca.issue(t, "server one", 2, false)
	certFile := writeFile(t, filepath.Join(dir, "server.crt"), cert1)
	keyFile := writeFile(t, filepath.Join(dir, "server.key"), key1)

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	s := startServe(t, hup, noEnv, "--data", filepath.Join(dir, "data"), "--addr", "127.0.0.1:0", "--tls-cert", certFile, "--tls-key", keyFile)

	client := &tls.Config{RootCAs: ca.pool}
	leaf, err := handshake(s.addr, client)
	if err != nil {
		t.Fatalf("TLS 1.2+ handshake: %v", err)
	}
	if leaf.Subject.CommonName != "server one" {
		t.Fatalf("served %q", leaf.Subject.CommonName)
	}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		if _, err := handshake(s.addr, &tls.Config{RootCAs: ca.pool, MinVersion: v, MaxVersion: v}); err != nil {
			t.Errorf("%s refused: %v", tls.VersionName(v), err)
		}
	}
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		_, err := handshake(s.addr, &tls.Config{RootCAs: ca.pool, MinVersion: v, MaxVersion: v})
		// The server's alert, not a client-side refusal.
		if err == nil || !strings.Contains(err.Error(), "protocol version not supported") {
			t.Errorf("%s: handshake error %v, want the server's protocol version alert", tls.VersionName(v), err)
		}
	}
	// Plain HTTP on the TLS port gets no answer from the API.
	resp, err := (&http.Client{Timeout: scriptTimeout}).Get("http://" + s.addr + "/healthz")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP answered 200")
		}
	}

	// SIGHUP with a broken key file: logged, the old certificate stays.
	writeFile(t, keyFile, []byte("not a key"))
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, s.stderr, "TLS certificate reload failed; still serving the previous certificate")
	if leaf, err := handshake(s.addr, client); err != nil || leaf.Subject.CommonName != "server one" {
		t.Fatalf("after a failed reload: %v, %v", leaf, err)
	}

	// SIGHUP with a new pair: new connections get the new certificate.
	cert2, key2 := ca.issue(t, "server two", 3, false)
	writeFile(t, certFile, cert2)
	writeFile(t, keyFile, key2)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, s.stderr, "TLS certificate reloaded")
	if leaf, err := handshake(s.addr, client); err != nil || leaf.Subject.CommonName != "server two" {
		t.Fatalf("after SIGHUP: %v, %v", leaf, err)
	}
	if strings.Contains(s.stderr.String(), "WARNING: serving plain HTTP") {
		t.Errorf("warned about plain HTTP while serving HTTPS")
	}
	if code := s.stop(); code != exitOK {
		t.Errorf("serve exited with %d\n%s", code, s.stderr)
	}
}

// TestServeMutualTLS: with client_ca_file, a client must present a
// certificate that CA signed.
func TestServeMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "paytrail test CA")
	clientCA := newTestCA(t, "paytrail client CA")
	otherCA := newTestCA(t, "someone else's CA")
	cert, key := ca.issue(t, "server", 2, false)
	config := "tls:\n" +
		"  cert_file: " + writeFile(t, filepath.Join(dir, "server.crt"), cert) + "\n" +
		"  key_file: " + writeFile(t, filepath.Join(dir, "server.key"), key) + "\n" +
		"  client_ca_file: " + writeFile(t, filepath.Join(dir, "clients.pem"), clientCA.pem) + "\n"
	cfgFile := writeFile(t, filepath.Join(dir, "paytrail.yaml"), []byte(config))
	s := startServe(t, nil, noEnv, "--config", cfgFile, "--data", filepath.Join(dir, "data"), "--addr", "127.0.0.1:0")

	pair := func(ca *testCA, cn string) tls.Certificate {
		c, k := ca.issue(t, cn, 7, true)
		p, err := tls.X509KeyPair(c, k)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if _, err := handshake(s.addr, &tls.Config{RootCAs: ca.pool}); err == nil || !strings.Contains(err.Error(), "certificate required") {
		t.Errorf("a client without a certificate: %v, want the server's certificate required alert", err)
	}
	if _, err := handshake(s.addr, &tls.Config{RootCAs: ca.pool, GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		// Sent whatever CAs the server asks for.
		c := pair(otherCA, "mallory")
		return &c, nil
	}}); err == nil || !strings.Contains(err.Error(), "unknown certificate authority") {
		t.Errorf("a client certificate of another CA: %v, want the server's unknown certificate authority alert", err)
	}
	if _, err := handshake(s.addr, &tls.Config{RootCAs: ca.pool, Certificates: []tls.Certificate{pair(clientCA, "auditor")}}); err != nil {
		t.Errorf("a client certificate of the client CA was refused: %v", err)
	}
	if !strings.Contains(s.stderr.String(), "mtls=true") {
		t.Errorf("the start log does not say mutual TLS is on:\n%s", s.stderr)
	}
}

// TestServeTLSConfigErrors: a half-configured or unreadable TLS setup, or a
// key file anyone can read, stops serve before it creates anything.
func TestServeTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "paytrail test CA")
	cert, key := ca.issue(t, "server", 2, false)
	certFile := writeFile(t, filepath.Join(dir, "server.crt"), cert)
	keyFile := writeFile(t, filepath.Join(dir, "server.key"), key)
	openKey := writeFile(t, filepath.Join(dir, "open.key"), key)
	if err := os.Chmod(openKey, 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"cert without key", []string{"--tls-cert", certFile}, "paytrail: tls needs both a certificate and its key"},
		{"key without cert", []string{"--tls-key", keyFile}, "paytrail: tls needs both a certificate and its key"},
		{"key anyone can read", []string{"--tls-cert", certFile, "--tls-key", openKey}, "paytrail: tls key file " + openKey + " has mode 0644: anyone on the machine can read it"},
		{"no such file", []string{"--tls-cert", filepath.Join(dir, "none.crt"), "--tls-key", keyFile}, "paytrail: failed to load TLS certificate: "},
		{"mismatched pair", []string{"--tls-cert", certFile, "--tls-key", writeFile(t, filepath.Join(dir, "other.key"), func() []byte { _, k := ca.issue(t, "x", 9, false); return k }())}, "paytrail: failed to load TLS certificate: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, append([]string{"serve", "--data", data, "--addr", "127.0.0.1:0"}, tc.args...)...)
			if code != exitUsage || !strings.HasPrefix(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, exitUsage, tc.want)
			}
			if _, err := os.Stat(data); err == nil {
				t.Errorf("a failed start created the data dir")
			}
		})
	}
}

// waitFor waits until w holds s. The deadline is for a hung server, not a
// speed assertion.
func waitFor(t *testing.T, w *syncBuffer, s string) {
	t.Helper()
	deadline := time.Now().Add(scriptTimeout)
	for !strings.Contains(w.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q within %s:\n%s", s, scriptTimeout, w)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
