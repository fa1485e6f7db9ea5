package swarm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/masonops/mason/netsvc/daemon"
	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
)

// NetsvcCert issues the network services daemon's API certificate from the
// "netsvc" authority, naming exactly the service node, and installs it
// there.
type NetsvcCert struct{}

// NetsvcCertIn waits for the authority.
type NetsvcCertIn struct {
	CA     role.One[CAOut]
	Domain string `attr:"swarm.domain"`
	Issuer role.Uses[pki.Issuer]
}

// NetsvcCertOut describes the installed certificate (no key).
type NetsvcCertOut struct {
	Cert EngineCertOut
}

// Meta implements role.Role.
func (NetsvcCert) Meta() role.Meta {
	return role.Meta{Name: "netsvc-cert", Version: "1", Doc: "issues and installs the network services daemon's API certificate"}
}

// Run implements role.Role.
func (NetsvcCert) Run(ctx context.Context, rc *role.Context, in NetsvcCertIn) (NetsvcCertOut, error) {
	c, err := installServerCert(ctx, rc, in.Issuer.Value, NetsvcCA, in.Domain, pki.FilesIn(NetsvcPKIDir, "server"))
	return NetsvcCertOut{Cert: c}, err
}

// Check reports drift when the installed certificate is missing or differs.
func (NetsvcCert) Check(ctx context.Context, rc *role.Context, _ NetsvcCertIn, last NetsvcCertOut) (string, error) {
	return certDrift(ctx, rc, last.Cert), nil
}

// Netsvcd runs mason's network services daemon (netsvc/daemon) on the
// service node, as a unit its supervisor restarts: authoritative DNS for the deployment's zone on port 53 and
// the load balancer's frontends, managed over a mutual-TLS API on port
// 8853 that lets in only clients of the "netsvc" authority. The unit
// outlives the controller, so DNS and the load balancer keep serving after
// it exits; its state (records, frontends, backends) is a
// bbolt file on the node, so a restarted daemon serves the same.
//
// The program is the controller's own (it serves `netsvcd ARGS` with
// daemon.Main), copied to the node; a changed program is drift, and
// re-deployed.
type Netsvcd struct{}

// NetsvcdIn is the certificate, the zone and the program.
type NetsvcdIn struct {
	Cert   role.Same[NetsvcCertOut]
	Zone   string `attr:"swarm.domain"`
	Binary string `attr:"netsvc.binary"`
	Issuer role.Uses[pki.Issuer]
	Units  role.Uses[provider.Units]
}

// NetsvcdOut is the running daemon.
type NetsvcdOut struct {
	Node string
	IP   string
	// API and DNS are the daemon's addresses; ServerName is what its
	// certificate names (the node's address).
	API        string
	DNS        string
	ServerName string
	Zone       string
}

// Meta implements role.Role.
func (Netsvcd) Meta() role.Meta {
	return role.Meta{Name: "netsvcd", Version: "1", Doc: "runs the DNS and load-balancer daemon (mutual-TLS API) on the service node"}
}

const netsvcdProgram = NetsvcDir + "/netsvcd"

var providerExec = provider.FileOptions{Mode: 0o755}

func netsvcdArgs(ip string, in NetsvcdIn) []string {
	f := in.Cert.Value.Cert.Files
	return []string{netsvcdProgram, "netsvcd",
		"-state", NetsvcDir + "/state.db",
		"-api", hostPort(ip, NetsvcAPIPort),
		"-dns", hostPort(ip, DNSPort),
		"-zone", in.Zone,
		"-cert", f.Cert, "-key", f.Key, "-ca", f.CA,
	}
}

// programFile returns the path and SHA-256 of the program to copy.
func programFile(path string) (string, string, error) {
	if path == "" {
		exe, err := os.Executable()
		if err != nil {
			return "", "", fmt.Errorf("netsvcd: finding this program: %w", err)
		}
		path = exe
	}
	f, err := os.Open(path)
	if err != nil {
		return "", "", fmt.Errorf("netsvcd: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", "", fmt.Errorf("netsvcd: reading %s: %w", path, err)
	}
	return path, hex.EncodeToString(h.Sum(nil)), nil
}

// Run implements role.Role.
func (Netsvcd) Run(ctx context.Context, rc *role.Context, in NetsvcdIn) (NetsvcdOut, error) {
	n := rc.Node()
	ip := n.InterfaceAddr.String()
	path, sum, err := programFile(in.Binary)
	if err != nil {
		return NetsvcdOut{}, err
	}
	args := netsvcdArgs(ip, in)
	stamp := []byte(sum + "\n" + strings.Join(args, "\x00") + "\n")
	out := NetsvcdOut{Node: n.Name, IP: ip, API: hostPort(ip, NetsvcAPIPort), DNS: hostPort(ip, DNSPort),
		ServerName: ip, Zone: in.Zone}
	units := in.Units.Value
	have, _ := n.Transport.Get(ctx, NetsvcDir+"/stamp")
	if st, err := units.UnitStatus(ctx, NetsvcdUnit); err == nil && st.Running() && bytes.Equal(have, stamp) {
		return out, nil
	}
	newProgram := !bytes.HasPrefix(have, []byte(sum+"\n"))
	if newProgram {
		// The running daemon keeps its program file open; a new one is
		// put beside it and renamed over it (Transport.Put is atomic).
		f, err := os.Open(path)
		if err != nil {
			return NetsvcdOut{}, err
		}
		err = n.Transport.Put(ctx, netsvcdProgram, f, providerExec)
		f.Close()
		if err != nil {
			return NetsvcdOut{}, fmt.Errorf("copying %s to %s: %w", path, n.Name, err)
		}
	}
	if err := rc.WriteFile(ctx, NetsvcDir+"/stamp", stamp, 0o644); err != nil {
		return NetsvcdOut{}, err
	}
	cli, err := netsvcClient(ctx, in.Issuer.Value, out)
	if err != nil {
		return NetsvcdOut{}, err
	}
	defer cli.Close()
	change, err := units.InstallUnit(ctx, netsvcdUnit(args))
	if err != nil {
		return NetsvcdOut{}, fmt.Errorf("the %s unit on %s: %w", NetsvcdUnit, n.Name, err)
	}
	if newProgram && change == provider.UnitUnchanged {
		if err := units.RestartUnit(ctx, NetsvcdUnit); err != nil {
			return NetsvcdOut{}, err
		}
	}
	err = waitUnit(ctx, units, n.Name, NetsvcdUnit, 30*time.Second, func() error {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := cli.Records(cctx, in.Zone)
		return err
	})
	if err != nil {
		return NetsvcdOut{}, err
	}
	rc.Log().Info("netsvcd serves", "api", out.API, "dns", out.DNS, "zone", in.Zone)
	return out, nil
}

// Check reports drift when the daemon is not running, does not answer, or
// runs another program than the controller's.
func (Netsvcd) Check(ctx context.Context, rc *role.Context, in NetsvcdIn, last NetsvcdOut) (string, error) {
	n := rc.Node()
	if d, err := unitDrift(ctx, in.Units.Value, n.Name, NetsvcdUnit, "netsvcd"); d != "" || err != nil {
		return d, err
	}
	// The program's digest is in the node's stamp, not in the output: a
	// new program restarts the daemon, and what waits for it (same
	// addresses) is not re-run.
	if _, sum, err := programFile(in.Binary); err == nil {
		if have, _ := n.Transport.Get(ctx, NetsvcDir+"/stamp"); !bytes.HasPrefix(have, []byte(sum+"\n")) {
			return "the netsvcd program changed", nil
		}
	}
	cli, err := netsvcClient(ctx, in.Issuer.Value, last)
	if err != nil {
		return "", err
	}
	defer cli.Close()
	if err := steady(ctx, func(ctx context.Context) error { _, err := cli.Records(ctx, last.Zone); return err }); err != nil {
		return "netsvcd on " + n.Name + " does not answer: " + err.Error(), nil
	}
	return "", nil
}

// ServeNetsvcd is the `netsvcd` command of the example's program (and of
// its test binary): it runs the daemon with args until SIGTERM.
func ServeNetsvcd(ctx context.Context, args []string) error {
	return daemon.Main(ctx, args, os.Stderr)
}
