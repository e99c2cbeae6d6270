package coordtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coordkit/coordkit/coord"
)

// CA is a throwaway certificate authority for tests of mutual TLS.
type CA struct {
	tb   testing.TB
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
	n    int64
}

// NewCA creates a CA whose files live in a temporary directory of tb.
func NewCA(tb testing.TB) *CA {
	tb.Helper()
	key := newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "coordtest CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatalf("coordtest: CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("coordtest: CA certificate: %v", err)
	}
	ca := &CA{tb: tb, dir: tb.TempDir(), cert: cert, key: key, n: 1}
	ca.file = filepath.Join(ca.dir, "ca.pem")
	writePEM(tb, ca.file, "CERTIFICATE", der)
	return ca
}

// CAFile is the path of the CA's certificate (PEM).
func (ca *CA) CAFile() string { return ca.file }

// Issue signs a certificate for name, valid for client and server
// authentication on 127.0.0.1, ::1 and localhost, and returns the TLS
// settings of a member that uses it.
func (ca *CA) Issue(name string) *coord.TLSConfig {
	ca.tb.Helper()
	ca.n++
	key := newKey(ca.tb)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.n),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		ca.tb.Fatalf("coordtest: certificate for %s: %v", name, err)
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		ca.tb.Fatalf("coordtest: key for %s: %v", name, err)
	}
	t := &coord.TLSConfig{CAFile: ca.file,
		CertFile: filepath.Join(ca.dir, name+".pem"), KeyFile: filepath.Join(ca.dir, name+"-key.pem")}
	writePEM(ca.tb, t.CertFile, "CERTIFICATE", der)
	writePEM(ca.tb, t.KeyFile, "EC PRIVATE KEY", kd)
	return t
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("coordtest: key: %v", err)
	}
	return k
}

func writePEM(tb testing.TB, path, typ string, der []byte) {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		tb.Fatalf("coordtest: %v", err)
	}
}
