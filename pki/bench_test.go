package pki_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/masonops/mason/pki"
)

// BenchmarkIssue compares mason's leaf issuance (validation, ECDSA P-256
// key generation, signing, key sealing, recording in the store) with a raw
// loop of ECDSA key generation plus x509.CreateCertificate, interleaved
// iteration by iteration in the same run. It reports issue/raw: mason's
// issuance rate divided by the raw rate (1.0 means no overhead; the target
// is >= 0.8). On a shared machine other processes land on one side or the
// other at random, so issue/raw is the median of the ratios of batches of
// 64 iterations; issues/s and raw/s are plain totals over the run.
//
//	go test ./pki -run '^$' -bench Issue -benchtime 2s
func BenchmarkIssue(b *testing.B) {
	ctx := context.Background()
	m := newManager(b, memStore(b), newKEK(b))
	a, err := m.Open(ctx, "bench", pki.AuthorityConfig{})
	if err != nil {
		b.Fatal(err)
	}

	// The raw loop's CA: the same kind of root, signing directly.
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "raw root"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		b.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		b.Fatal(err)
	}
	ip := netip.MustParseAddr("10.78.0.11")
	limit := new(big.Int).Lsh(big.NewInt(1), 126)

	const batch = 64
	var masonTime, rawTime, bMason, bRaw time.Duration
	var ratios []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("n%d", i)
		dns := name + ".lab"
		req := pki.Request{Kind: pki.Server, Identity: pki.Identity{Name: name, DNSNames: []string{dns}, IPs: []netip.Addr{ip}}}

		t0 := time.Now()
		if _, err := a.Issue(ctx, req); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		serial, err := rand.Int(rand.Reader, limit)
		if err != nil {
			b.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name}, DNSNames: []string{dns},
			IPAddresses: []net.IP{ip.AsSlice()}, NotBefore: t1, NotAfter: t1.Add(90 * 24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		if _, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		bMason += t1.Sub(t0)
		bRaw += t2.Sub(t1)
		if (i+1)%batch == 0 {
			ratios = append(ratios, bRaw.Seconds()/bMason.Seconds())
			masonTime, rawTime, bMason, bRaw = masonTime+bMason, rawTime+bRaw, 0, 0
		}
	}
	b.StopTimer()
	masonTime, rawTime = masonTime+bMason, rawTime+bRaw
	ratio := rawTime.Seconds() / masonTime.Seconds() // too few iterations for batches
	if len(ratios) > 0 {
		slices.Sort(ratios)
		ratio = ratios[len(ratios)/2]
	}
	b.ReportMetric(ratio, "issue/raw")
	b.ReportMetric(float64(b.N)/masonTime.Seconds(), "issues/s")
	b.ReportMetric(float64(b.N)/rawTime.Seconds(), "raw/s")
}
