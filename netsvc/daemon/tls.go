package daemon

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/masonops/mason/pki"
)

// ServerTLS builds the API's server config from the files a pki.Bundle was
// installed as (pki.FilesIn): the daemon's pki.Server certificate and key,
// and the service CA whose client certificates are let in. Clients must
// present a certificate from that CA with the client-auth usage; anything
// else fails the handshake.
//
// Revocation is not checked here (the daemon has no CRL); on a controller
// holding the authority, pass Authority.ServerConfig instead.
func ServerTLS(f pki.Files) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("daemon: loading API certificate %s and its key: %w", f.Cert, err)
	}
	pool, err := loadPool(f.CA)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}, nil
}

// ClientTLS builds a client config from a pki.Client bundle: it presents
// the bundle's certificate, trusts only the bundle's CA and requires the
// daemon's certificate to name serverName (a DNS name or an IP literal).
func ClientTLS(b pki.Bundle, serverName string) (*tls.Config, error) {
	cert, err := b.TLSCertificate()
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b.CAPEM) {
		return nil, fmt.Errorf("daemon: bundle %s %q has no CA certificate to trust", b.Service, b.Name)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ServerName:   serverName,
	}, nil
}

func loadPool(path string) (*x509.CertPool, error) {
	pemBytes, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("daemon: reading client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("daemon: client CA %s holds no PEM certificate", path)
	}
	return pool, nil
}
