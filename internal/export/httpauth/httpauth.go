// Package httpauth owns how exporters authenticate and identify themselves:
// header values from literals, files or environment variables, basic and
// bearer authentication read from files on every request (so rotated
// Secrets take effect without a restart), and client TLS.
package httpauth

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/deltapipeline/deltapipeline/internal/workerconfig"
)

// HeaderValue resolves a configured header's value now.
func HeaderValue(h workerconfig.Header) (string, error) {
	switch {
	case h.Value != "":
		return h.Value, nil
	case h.ValueFile != "":
		return readSecretFile(h.ValueFile, "header "+h.Name)
	case h.ValueEnv != "":
		v, ok := os.LookupEnv(h.ValueEnv)
		if !ok {
			return "", fmt.Errorf("header %s: environment variable %s is not set", h.Name, h.ValueEnv)
		}
		return v, nil
	}
	return "", fmt.Errorf("header %s has no value, valueFile or valueEnv", h.Name)
}

// CheckHeaders resolves every header once, so a missing file or variable
// fails start-up with a clear message instead of every request later.
func CheckHeaders(headers []workerconfig.Header) error {
	for _, h := range headers {
		if _, err := HeaderValue(h); err != nil {
			return err
		}
	}
	return nil
}

func readSecretFile(path, what string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading %s from %s: %w", what, path, err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// Transport adds headers and authentication to every request.
type Transport struct {
	Base      http.RoundTripper
	UserAgent string
	Headers   []workerconfig.Header
	BasicAuth *workerconfig.BasicAuth
	// BearerTokenFile, if set, is read for each request.
	BearerTokenFile string
}

// RoundTrip clones the request, as the RoundTripper contract requires, and
// sets the configured headers on the clone.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	if t.UserAgent != "" {
		req.Header.Set("User-Agent", t.UserAgent)
	}
	for _, h := range t.Headers {
		v, err := HeaderValue(h)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		req.Header.Set(h.Name, v)
	}
	if t.BasicAuth != nil {
		password, err := readSecretFile(t.BasicAuth.PasswordFile, "basic auth password")
		if err != nil {
			closeBody(req)
			return nil, err
		}
		req.SetBasicAuth(t.BasicAuth.Username, password)
	}
	if t.BearerTokenFile != "" {
		token, err := readSecretFile(t.BearerTokenFile, "bearer token")
		if err != nil {
			closeBody(req)
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return t.Base.RoundTrip(req)
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// TLSConfig builds a client TLS configuration; nil cfg gives nil (system defaults).
func TLSConfig(cfg *workerconfig.TLS) (*tls.Config, error) {
	if cfg == nil {
		return nil, nil
	}
	out := &tls.Config{
		ServerName:         cfg.ServerName,
		InsecureSkipVerify: cfg.InsecureSkipVerify, //nolint:gosec // an explicit, documented opt-in
		MinVersion:         tls.VersionTLS12,
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading TLS CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS CA file %s holds no PEM certificate", cfg.CAFile)
		}
		out.RootCAs = pool
	}
	if cfg.CertFile != "" {
		// Loaded per handshake so a renewed certificate is picked up.
		certFile, keyFile := cfg.CertFile, cfg.KeyFile
		if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
			return nil, fmt.Errorf("loading TLS client certificate: %w", err)
		}
		out.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				return nil, fmt.Errorf("loading TLS client certificate: %w", err)
			}
			return &c, nil
		}
	}
	return out, nil
}
