package ansible

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/masonops/mason/role"
)

// Playbook is a role that runs an Ansible playbook (or a role directory)
// against the node it is bound to. In's fields are the playbook's
// variables, Out's fields are read back from the facts and registered
// values the playbook sets; see the package documentation.
type Playbook[In, Out any] struct {
	// Name is the role's name in plans and journals; empty means
	// "ansible-" and the base name of Dir.
	Name string
	// Version is the role's own version; the digest of Dir's files is
	// appended to it. Empty means "1".
	Version string
	// Doc is a sentence for people reading a plan.
	Doc string
	// Dir holds the playbook and everything it uses. A relative Dir is
	// taken from the controller's working directory when the role is
	// bound. ansible-playbook runs in Dir, so an ansible.cfg there applies.
	Dir string
	// File is the playbook in Dir to run; empty means site.yml, or, when
	// Dir is a role (it has tasks/main.yml), a play that applies that role
	// to the node.
	File string
	// Groups are the inventory groups the node is in, for playbooks whose
	// plays name hosts by group; the node is always in "all" and in a
	// group of its own name.
	Groups []string
	// Become runs tasks with become (sudo) where the login user is not
	// root; sudo must not ask for a password.
	Become bool
	// CheckMode lets planning detect drift: a converged node-role runs the
	// playbook with --check, and any task that would change is drift.
	CheckMode bool
	// Requires and Retry are as in [role.Meta].
	Requires []string
	Retry    role.Retry
	// Command is the ansible-playbook program; empty means
	// "ansible-playbook" from PATH.
	Command string
	// Env holds extra environment variables for ansible-playbook
	// (KEY=VALUE), for example ANSIBLE_ROLES_PATH. Never put secrets here:
	// pass them as attr.Secret inputs.
	Env []string
	// Timeout bounds one ansible-playbook run; 0 means 30 minutes.
	Timeout time.Duration
}

var (
	_ role.Role[struct{}, struct{}]    = Playbook[struct{}, struct{}]{}
	_ role.Checker[struct{}, struct{}] = Playbook[struct{}, struct{}]{}
)

// Meta implements role.Role. Its Version ends with a digest of every file
// under Dir, read when the role is bound: an edited playbook is a new
// version of the role.
func (p Playbook[In, Out]) Meta() role.Meta {
	version := p.Version
	if version == "" {
		version = "1"
	}
	digest, err := dirDigest(p.absDir())
	if err != nil {
		digest = "unreadable"
	}
	return role.Meta{
		Name:     p.name(),
		Version:  version + "+" + digest,
		Doc:      p.Doc,
		Requires: p.Requires,
		Retry:    p.Retry,
	}
}

func (p Playbook[In, Out]) name() string {
	if p.Name != "" {
		return p.Name
	}
	base := strings.ToLower(filepath.Base(filepath.Clean(p.Dir)))
	var b strings.Builder
	for _, r := range base {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	return "ansible-" + strings.Trim(b.String(), "-")
}

func (p Playbook[In, Out]) absDir() string {
	d, err := filepath.Abs(p.Dir)
	if err != nil {
		return p.Dir
	}
	return d
}

// Run implements role.Role: it runs the playbook against rc's node.
func (p Playbook[In, Out]) Run(ctx context.Context, rc *role.Context, in In) (Out, error) {
	var out Out
	rep, err := p.play(ctx, rc, in, false)
	if err != nil {
		return out, err
	}
	if err := decodeOutputs(&out, rep); err != nil {
		return out, fmt.Errorf("ansible: %s on %s: %w", p.name(), rc.Node().Name, err)
	}
	return out, nil
}

// Check implements role.Checker. Without CheckMode it reports no drift;
// with it, it runs the playbook with --check and reports the tasks that
// would change.
func (p Playbook[In, Out]) Check(ctx context.Context, rc *role.Context, in In, _ Out) (string, error) {
	if !p.CheckMode {
		return "", nil
	}
	rep, err := p.play(ctx, rc, in, true)
	if err != nil {
		return "", err
	}
	if rep.stats.Changed == 0 {
		return "", nil
	}
	return fmt.Sprintf("ansible --check: %d task(s) would change: %s", rep.stats.Changed, strings.Join(rep.stats.ChangedTasks, ", ")), nil
}

// dirDigest fingerprints every regular file and symlink under dir: its
// path, mode and content. Version-control and editor debris (.git,
// __pycache__, *.retry, *.swp) is left out.
func dirDigest(dir string) (string, error) {
	type entry struct{ rel, sum string }
	var entries []entry
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != dir && (name == ".git" || name == "__pycache__") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(name, ".retry") || strings.HasSuffix(name, ".swp") || strings.HasSuffix(name, "~") {
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		info, err := d.Info()
		if err != nil {
			return err
		}
		h := sha256.New()
		fmt.Fprintf(h, "%o\x00", info.Mode())
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			io.WriteString(h, target)
		case info.Mode().IsRegular():
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
		default:
			return nil
		}
		entries = append(entries, entry{rel, hex.EncodeToString(h.Sum(nil))})
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].rel < entries[j].rel })
	h := sha256.New()
	for _, e := range entries {
		fmt.Fprintf(h, "%s\x00%s\n", e.rel, e.sum)
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}
