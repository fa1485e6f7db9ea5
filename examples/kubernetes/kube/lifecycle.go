package kube

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/provider"
)

// RemoveWorker scales the cluster in by its last worker: it drains the
// worker and deletes its node object, releases its pod subnet, deletes the
// lab node and forgets its journal records, then applies the deployment
// without it, which re-runs the routes on every remaining node (their
// aggregate input lost the subnet) and the smoke test.
//
// The drain and delete are written as a function of the node so that they
// become the kubelet role's undo once mason undoes the roles of nodes that
// leave a deployment.
func RemoveWorker(ctx context.Context, cfg Config) (*Summary, string, error) {
	if cfg.Workers < 1 {
		return nil, "", fmt.Errorf("kubernetes example: no worker to remove")
	}
	e, err := open(ctx, cfg)
	if err != nil {
		return nil, "", err
	}
	defer e.close()
	if err := e.ensureNodes(ctx); err != nil {
		return nil, "", err
	}
	victim := e.nodes.w[len(e.nodes.w)-1]
	if len(e.nodes.w) < 2 {
		return nil, "", fmt.Errorf("kubernetes example: %s is the last worker; destroy the cluster instead", victim.Name)
	}
	if err := DrainAndDelete(ctx, e.nodes.cp[0], KubernetesDir+"/bin", victim.Name); err != nil {
		return nil, "", err
	}
	if err := ReleasePodSubnet(ctx, e.net, victim.Name); err != nil {
		return nil, "", err
	}
	if err := e.lab.Provider().Delete(ctx, victim.ID); err != nil {
		return nil, "", err
	}
	if err := removeCgroups("/mason-" + cfg.Lab + "/" + victim.Name); err != nil {
		return nil, "", err
	}
	if err := graph.ForgetNode(ctx, e.st, cfg.Lab, victim.Name); err != nil {
		return nil, "", err
	}
	cfg.Workers--
	e.nodes.w = e.nodes.w[:len(e.nodes.w)-1]
	sum, err := e.apply(ctx, cfg)
	return sum, victim.Name, err
}

// DrainAndDelete evicts a worker's pods (kubectl drain) and deletes its
// node object, from a control-plane node with the admin kubeconfig.
func DrainAndDelete(ctx context.Context, cp *provider.Node, binDir, node string) error {
	bins := Installed{Dir: binDir}
	// A node that never registered, or was deleted by an earlier attempt,
	// has nothing to drain.
	if _, err := kubectl(ctx, cp, bins, "", "get", "node", node); err != nil && strings.Contains(err.Error(), "NotFound") {
		return nil
	}
	if _, err := kubectl(ctx, cp, bins, "", "drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--force", "--timeout=90s"); err != nil {
		return err
	}
	_, err := kubectl(ctx, cp, bins, "", "delete", "node", node, "--wait=true", "--ignore-not-found")
	return err
}

// Rotation reports a serving-certificate rotation.
type Rotation struct {
	// Old and New map each API server's node to its serving serial.
	Old, New map[string]string
	Summary  *Summary
}

// RotateServing renews every API server's serving certificate (a new key,
// the same names), installs them, and waits until each API server serves
// its new one. The API servers are not restarted: kube-apiserver reloads
// its serving certificate from its files, so clients see no failure.
func RotateServing(ctx context.Context, cfg Config) (*Rotation, error) {
	e, err := open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer e.close()
	if err := e.ensureNodes(ctx); err != nil {
		return nil, err
	}
	ca, err := e.mgr.Load(ctx, ClusterCA)
	if err != nil {
		return nil, err
	}
	rot := &Rotation{Old: map[string]string{}, New: map[string]string{}}
	for _, n := range e.nodes.cp {
		old, err := servedSerial(ctx, n, ca)
		if err != nil {
			return nil, err
		}
		rot.Old[n.Name] = old
		b, err := ca.Renew(ctx, pki.Server, ServingID(n.Name))
		if err != nil {
			return nil, fmt.Errorf("renewing %s's serving certificate: %w", n.Name, err)
		}
		rot.New[n.Name] = b.Serial
	}
	cfg.PlanOptions = append(cfg.PlanOptions, graph.Force("kube-apiserver-certs"))
	if rot.Summary, err = e.apply(ctx, cfg); err != nil {
		return rot, err
	}
	for _, n := range e.nodes.cp {
		err := retry(ctx, 3*time.Minute, func() error {
			got, err := servedSerial(ctx, n, ca)
			if err != nil {
				return err
			}
			if got != rot.New[n.Name] {
				return fmt.Errorf("%s still serves %s, want %s", n.Name, got, rot.New[n.Name])
			}
			return nil
		})
		if err != nil {
			return rot, err
		}
	}
	return rot, nil
}

// servedSerial is the serial of the certificate an API server presents.
func servedSerial(ctx context.Context, n *provider.Node, ca *pki.Authority) (string, error) {
	addr := net.JoinHostPort(n.InterfaceAddr.String(), strconv.Itoa(defaultOf(APIPort)))
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 3 * time.Second}, Config: &tls.Config{RootCAs: ca.RootPool(), ServerName: n.InterfaceAddr.String(), MinVersion: tls.VersionTLS12}}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("TLS to %s's API server: %w", n.Name, err)
	}
	defer c.Close()
	return serialHex(c.(*tls.Conn).ConnectionState().PeerCertificates[0]), nil
}

func serialHex(c *x509.Certificate) string { return fmt.Sprintf("%x", c.SerialNumber) }
