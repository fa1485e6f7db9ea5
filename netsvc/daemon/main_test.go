package daemon

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMainFlags(t *testing.T) {
	c := newCreds(t)
	state := filepath.Join(t.TempDir(), "s.db")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no flags", nil, "-state, -cert, -key and -ca are required"},
		{"unknown flag", []string{"-nope"}, "flag provided but not defined"},
		{"missing key file", []string{"-state", state, "-cert", c.files.Cert, "-key", "/nonexistent", "-ca", c.files.CA}, "loading API certificate"},
		{"missing CRL", []string{"-state", state, "-cert", c.files.Cert, "-key", c.files.Key, "-ca", c.files.CA, "-crl", "/nonexistent.crl"}, "write the service's CRL there"},
		{"missing CA", []string{"-state", state, "-cert", c.files.Cert, "-key", c.files.Key, "-ca", c.files.Cert + ".none"}, "reading client CA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := Main(context.Background(), tt.args, &out)
			require.ErrorContains(t, err, tt.want)
		})
	}
}
