package deploy

import (
	"context"
	"errors"
	"fmt"

	"github.com/masonops/mason/seal"
)

// KeySource says where a run finds the deployment's key-encryption key,
// which seals its secrets at rest (package seal).
type KeySource struct {
	// Env names an environment variable holding the key as text (hex or
	// base64); when it is set it wins over File.
	Env string
	// File is a key file, mode 0600 (or 0400), raw or as text. A new
	// deployment's key is created here.
	File string
	// New allows making a new key for a deployment the state knows already
	// but that has no key file: only for a state written before keys were
	// used (anything sealed under a lost key stays lost). Without it, a
	// missing key for a known deployment is refused.
	New bool
}

func (k KeySource) places() string {
	switch {
	case k.Env != "" && k.File != "":
		return fmt.Sprintf("key file %s or environment variable %s", k.File, k.Env)
	case k.Env != "":
		return "environment variable " + k.Env
	}
	return "key file " + k.File
}

// KEK returns the deployment's key-encryption key, checked against the
// state by Open; nil when Options.Key was nil, or when a Read of a new
// deployment found none (nothing is sealed yet). Give it to the graph
// deployment (graph.Deployment.UseKEK), which seals the journal's
// secrets with it, and to pki.
func (d *Deployment) KEK() *seal.KEK { return d.kek }

func keyCheck(name string) string { return Key(name) + "key-check" }

// loadKey finds the key and checks it against the state before anything
// runs: a missing or wrong key is refused, naming where it looked; a key
// is made only for a new deployment (or when KeySource.New says so).
func (d *Deployment) loadKey(ctx context.Context, newDeployment bool) error {
	ks := *d.o.Key
	k, err := seal.Load(ks.Env, ks.File)
	switch {
	case err == nil:
	case errors.Is(err, seal.ErrNoKey) && (newDeployment || ks.New):
		if d.o.Purpose == Read {
			return nil // nothing to seal or open yet; apply makes the key
		}
		if ks.File == "" {
			return fmt.Errorf("deploy: deployment %s needs a key-encryption key: set environment variable %s (hex or base64 of 32 random bytes)", d.o.Name, ks.Env)
		}
		if k, err = seal.CreateFile(ks.File); err != nil {
			return fmt.Errorf("deploy: making the key-encryption key of deployment %s: %w", d.o.Name, err)
		}
		d.madeKey = true
	case errors.Is(err, seal.ErrNoKey):
		return fmt.Errorf("deploy: %s exists, but its key-encryption key is missing (looked for %s): %w. Restore the key the state was sealed with; a new key cannot open what it sealed (if this state was written before keys were used, ask for a new key explicitly)",
			d.describeState(), ks.places(), err)
	default:
		return fmt.Errorf("deploy: the key-encryption key of deployment %s: %w", d.o.Name, err)
	}
	if d.o.Purpose == Read {
		// Compare, but record nothing.
		e, gerr := d.o.Store.Get(ctx, keyCheck(d.o.Name))
		if gerr == nil {
			if verr := k.Verify(e.Value); verr != nil {
				return d.wrongKey(verr, ks)
			}
		}
		d.kek = k
		return nil
	}
	if _, err := seal.Check(ctx, d.o.Store, keyCheck(d.o.Name), k); err != nil {
		if d.madeKey {
			// Another controller recorded its own new key first.
			return fmt.Errorf("deploy: deployment %s: another controller started it with another key at the same time: %w", d.o.Name, err)
		}
		return d.wrongKey(err, ks)
	}
	d.kek = k
	return nil
}

func (d *Deployment) wrongKey(err error, ks KeySource) error {
	if errors.Is(err, seal.ErrWrongKey) {
		return fmt.Errorf("deploy: the key-encryption key from %s is not the one %s was sealed with: %w; nothing was changed", ks.places(), d.describeState(), err)
	}
	return fmt.Errorf("deploy: checking the key-encryption key against %s: %w", where(d.o), err)
}

func (d *Deployment) describeState() string {
	return fmt.Sprintf("deployment %s in %s", d.o.Name, where(d.o))
}
