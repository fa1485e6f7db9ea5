package daemon

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/masonops/mason/pki"
)

// ServerTLS builds the API's server config from the files a pki.Bundle was
// installed as (pki.FilesIn): the daemon's pki.Server certificate and key,
// and the service CA whose client certificates are let in. Clients must
// present a certificate from that CA with the client-auth usage; anything
// else fails the handshake.
//
// crlFile, when not empty, names the service's CRL (PEM, as
// Authority.CRL returns it): every handshake then also checks that the
// client's certificate is not revoked, and fails when the CRL is missing,
// expired or not signed by the client's issuer — a revocation check that
// cannot be made is not passed. The file is re-read when it changes, so a
// controller revokes a client by writing a new CRL, without a restart.
func ServerTLS(f pki.Files, crlFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("daemon: loading API certificate %s and its key: %w", f.Cert, err)
	}
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("daemon: reading client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("daemon: client CA %s holds no PEM certificate", f.CA)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}
	if crlFile != "" {
		crl := &crlCache{path: crlFile}
		if _, err := crl.get(); err != nil {
			return nil, err
		}
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("daemon: client presented no certificate")
			}
			crlPEM, err := crl.get()
			if err != nil {
				return err
			}
			var chain []byte
			for _, c := range cs.PeerCertificates {
				chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
			}
			return pki.VerifyPEM(chain, caPEM, crlPEM, pki.VerifyOptions{Usage: x509.ExtKeyUsageClientAuth})
		}
	}
	return cfg, nil
}

// crlCache re-reads a CRL file when its size or modification time changes.
type crlCache struct {
	path string
	mu   sync.Mutex
	mod  time.Time
	size int64
	data []byte
}

func (c *crlCache) get() ([]byte, error) {
	fi, err := os.Stat(c.path)
	if err != nil {
		return nil, fmt.Errorf("daemon: CRL %s: %w (write the service's CRL there, or run without -crl)", c.path, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.data != nil && fi.ModTime().Equal(c.mod) && fi.Size() == c.size {
		return c.data, nil
	}
	data, err := os.ReadFile(c.path)
	if err != nil {
		return nil, fmt.Errorf("daemon: reading CRL: %w", err)
	}
	c.data, c.mod, c.size = data, fi.ModTime(), fi.Size()
	return data, nil
}
