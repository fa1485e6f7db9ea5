package daemon

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/masonops/mason/netsvc/authdns"
	"github.com/masonops/mason/pki"
)

// Main is the daemon's command line: it parses args (without the program
// name), serves until ctx ends and logs to logOut. Mount it as a "serve"
// subcommand of an application's own binary, or run cmd/mason-netsvcd.
//
//	-state FILE     bbolt state file (required)
//	-api ADDR       API address (default 127.0.0.1:8853)
//	-dns ADDR       DNS address, UDP and TCP (empty: no DNS)
//	-zone NAME      zone to serve; repeat for more
//	-forward ADDR   upstream resolver for names outside the zones, used for
//	                loopback clients asking for recursion; repeatable
//	-cert, -key, -ca  the daemon's pki server certificate, its key, and the
//	                CA of the clients it lets in (pki.FilesIn layout)
//	-crl FILE       the service's CRL (PEM, re-read when it changes); when
//	                set, revoked client certificates are refused
//	-ready-file F   write the bound addresses as JSON to F once serving
func Main(ctx context.Context, args []string, logOut io.Writer) error {
	fs := flag.NewFlagSet("mason-netsvcd", flag.ContinueOnError)
	fs.SetOutput(logOut)
	state := fs.String("state", "", "bbolt state `file` (required)")
	api := fs.String("api", "127.0.0.1:8853", "mutual-TLS API `address`")
	dnsAddr := fs.String("dns", "", "DNS `address` for UDP and TCP (empty: no DNS)")
	var zones, forward zoneList
	fs.Var(&zones, "zone", "zone `name` to serve (repeatable)")
	fs.Var(&forward, "forward", "upstream resolver `host:port` for other names, loopback clients only (repeatable)")
	cert := fs.String("cert", "", "API server certificate `file` (PEM, from pki)")
	key := fs.String("key", "", "API server private key `file` (PEM)")
	ca := fs.String("ca", "", "CA `file` whose client certificates may call the API")
	crl := fs.String("crl", "", "CRL `file` of the service (PEM); when set, revoked clients are refused")
	ready := fs.String("ready-file", "", "write the bound addresses as JSON to this `file` once serving")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *state == "" || *cert == "" || *key == "" || *ca == "" {
		fs.Usage()
		return fmt.Errorf("mason-netsvcd: -state, -cert, -key and -ca are required")
	}
	tlsCfg, err := ServerTLS(pki.Files{Cert: *cert, Key: *key, CA: *ca}, *crl)
	if err != nil {
		return err
	}
	cfg := Config{
		StatePath: *state,
		API:       *api,
		TLS:       tlsCfg,
		DNS:       *dnsAddr,
		Forward:   forward,
		Logger:    slog.New(slog.NewTextHandler(logOut, nil)),
	}
	for _, z := range zones {
		cfg.Zones = append(cfg.Zones, authdns.Zone{Name: z})
	}
	var readyErr error
	if *ready != "" {
		cfg.Ready = func(a Addrs) { readyErr = writeReady(*ready, a) }
	}
	err = Serve(ctx, cfg)
	if readyErr != nil {
		return fmt.Errorf("mason-netsvcd: writing ready file: %w", readyErr)
	}
	return err
}

type zoneList []string

func (z *zoneList) String() string     { return strings.Join(*z, ",") }
func (z *zoneList) Set(v string) error { *z = append(*z, v); return nil }
