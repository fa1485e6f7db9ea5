package pki

import "crypto/x509"

// CAKeysForTest returns the PKCS#8 DER of every CA private key the
// authority holds, so tests can search outputs for them.
func CAKeysForTest(a *Authority) [][]byte {
	var out [][]byte
	for _, g := range a.state.Load().gens {
		for _, k := range []any{g.rootKey, g.interKey} {
			if k == nil {
				continue
			}
			der, err := x509.MarshalPKCS8PrivateKey(k)
			if err != nil {
				panic(err)
			}
			out = append(out, der)
		}
	}
	return out
}
