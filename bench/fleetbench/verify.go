package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hashicorp/go-multierror"
	"golang.org/x/sync/errgroup"
)

// inspectScript prints, in sections split by "@@", what verify compares:
// the node's own facts, the config, the payload's digest, the modes, the
// reload log.
const inspectScript = `hostname; nproc; awk '/^MemTotal:/{print int($2/1024)}' /proc/meminfo; uname -r
echo @@; cat /var/lib/fleet/fleet.conf
echo @@; sha256sum /var/lib/fleet/blob.bin | cut -d' ' -f1
echo @@; stat -c '%a %n' "$@"
echo @@; cat /var/lib/fleet/reloads.log
exit 0`

// verify checks the end state of the work on every node: the config
// rendered from the node's facts, the version and every peer's address;
// the payload byte for byte; every mode; and that the reload command ran
// exactly reloads times (once more on the tampered node), the last time
// for the config as it is now.
func verify(ctx context.Context, dir, version string, reloads int, tampered string) error {
	f, nodes, err := openFleet(ctx, dir)
	if err != nil {
		return err
	}
	blob, err := os.ReadFile(filepath.Join(dir, blobFile))
	if err != nil {
		return err
	}
	wantBlob := sha256hex(blob)
	var peers []string
	for _, n := range f.Nodes {
		peers = append(peers, n.Addr.String())
	}
	paths := []string{configPath, blobPath}
	wantModes := fmt.Sprintf("644 %s\n644 %s\n", configPath, blobPath)
	for _, d := range tree {
		paths = append(paths, d.Path)
		wantModes += fmt.Sprintf("%o %s\n", d.Mode, d.Path)
	}
	errs := make([]error, len(f.Nodes))
	var g errgroup.Group
	g.SetLimit(8)
	for i, fn := range f.Nodes {
		g.Go(func() error {
			out, err := shellOut(ctx, nodes[fn.Name], "set -- "+strings.Join(paths, " ")+"\n"+inspectScript)
			if err != nil {
				errs[i] = err
				return nil
			}
			sec := strings.Split(string(out), "@@\n")
			if len(sec) != 5 {
				errs[i] = fmt.Errorf("%s: unreadable inspection output:\n%s", fn.Name, out)
				return nil
			}
			fact := strings.Fields(sec[0])
			if len(fact) != 4 {
				errs[i] = fmt.Errorf("%s: facts %q", fn.Name, sec[0])
				return nil
			}
			cpus, _ := strconv.Atoi(fact[1])
			mem, _ := strconv.Atoi(fact[2])
			self := nodeFacts{Name: fn.Name, Hostname: fact[0], CPUs: cpus, MemMiB: mem, Kernel: fact[3], Addr: fn.Addr.String()}
			conf := renderConfig(self, peers, version)
			var problems []string
			if sec[1] != conf {
				problems = append(problems, fmt.Sprintf("config is\n%s\nwant\n%s", sec[1], conf))
			}
			if got := strings.TrimSpace(sec[2]); got != wantBlob {
				problems = append(problems, fmt.Sprintf("payload digest %q, want %s", got, wantBlob))
			}
			if sec[3] != wantModes {
				problems = append(problems, fmt.Sprintf("modes\n%swant\n%s", sec[3], wantModes))
			}
			want := reloads
			if fn.Name == tampered {
				want++
			}
			lines := strings.Split(strings.TrimSpace(sec[4]), "\n")
			if sec[4] == "" {
				lines = nil
			}
			last := "reload " + sha256hex([]byte(conf))[:16]
			switch {
			case len(lines) != want:
				problems = append(problems, fmt.Sprintf("the reload command ran %d times, want %d:\n%s", len(lines), want, sec[4]))
			case lines[len(lines)-1] != last:
				problems = append(problems, fmt.Sprintf("last reload was %q, want %q (for the current config)", lines[len(lines)-1], last))
			}
			if len(problems) > 0 {
				errs[i] = fmt.Errorf("%s: %s", fn.Name, strings.Join(problems, "; "))
			}
			return nil
		})
	}
	_ = g.Wait()
	var me *multierror.Error
	for _, e := range errs {
		if e != nil {
			me = multierror.Append(me, e)
		}
	}
	if err := me.ErrorOrNil(); err != nil {
		return err
	}
	fmt.Printf("verify: %d nodes ok (version %s, %d reloads%s)\n", len(f.Nodes), version, reloads, map[bool]string{true: ", +1 on " + tampered, false: ""}[tampered != ""])
	return nil
}

// tamper changes one node's config behind both tools' backs.
func tamper(ctx context.Context, dir, node string) error {
	_, nodes, err := openFleet(ctx, dir)
	if err != nil {
		return err
	}
	n, ok := nodes[node]
	if !ok {
		return fmt.Errorf("no node %q", node)
	}
	return shell(ctx, n, "echo 'tampered = yes' >> "+configPath)
}

// reset removes the work from every node, for the next cold apply.
func reset(ctx context.Context, dir string) error {
	_, nodes, err := openFleet(ctx, dir)
	if err != nil {
		return err
	}
	var g errgroup.Group
	g.SetLimit(8)
	for _, n := range nodes {
		g.Go(func() error { return shell(ctx, n, "rm -rf "+root) })
	}
	return g.Wait()
}
