package raftnode

import (
	"crypto/tls"
	"crypto/x509"
	"os"

	"github.com/coordkit/coordkit/coord/internal/errdefs"
)

// TLSFiles names the PEM files of mutual TLS between members: dragonboat's
// peer transport uses them (Config.TLS), and so does the admission service.
type TLSFiles struct{ CAFile, CertFile, KeyFile string }

// Check loads the files, so that a bad path or certificate is reported by
// Open naming the field rather than by the first connection.
func (t *TLSFiles) Check() error {
	if t.CAFile == "" || t.CertFile == "" || t.KeyFile == "" {
		return errdefs.Config("TLS", "CAFile, CertFile and KeyFile are all required")
	}
	ca, err := os.ReadFile(t.CAFile)
	if err != nil {
		return errdefs.Config("TLS.CAFile", "%v", err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(ca) {
		return errdefs.Config("TLS.CAFile", "%s holds no PEM certificate", t.CAFile)
	}
	if _, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
		return errdefs.Config("TLS.CertFile", "%v", err)
	}
	return nil
}

// Configs builds crypto/tls settings from the files, for the admission
// service (coord/internal/admit): a server that requires a client
// certificate from the CA, and a client that presents this member's
// certificate.
func (t *TLSFiles) Configs() (server, client *tls.Config, err error) {
	ca, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, nil, err
	}
	server = &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	client = &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}
	return server, client, nil
}
