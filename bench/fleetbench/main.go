// Command fleetbench is the Go side of bench/fleet.sh, which compares
// mason's ssh provider with Ansible doing the same work on the same lab
// nodes (each running a real sshd):
//
//	fleetbench up -dir D -name NAME -n N   make the lab, start sshd in every node
//	fleetbench mason -dir D -version V [-again K] [-persist=false]  apply the work with mason over SSH (K more times, connections kept)
//	fleetbench verify -dir D -version V -reloads K [-tampered NODE]
//	fleetbench tamper -dir D -node NODE    change one node's config behind both tools' backs
//	fleetbench reset -dir D                remove the work from every node
//	fleetbench hosts -dir D                the nodes as Ansible inventory lines
//	fleetbench down -dir D                 remove the lab
//	fleetbench report -times FILE          the table and the ratio lines
//
// verify, tamper and reset reach the nodes through the lab's own transport,
// not through SSH, so they judge both tools from outside.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/masonops/mason/provider/ssh"
)

func main() {
	// A mason run starts a connection holder by running this binary again
	// (ssh.Persist.Start); in that process HolderMain serves and exits.
	ssh.HolderMain()
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: fleetbench up|mason|verify|tamper|reset|hosts|down|report [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	dir := fs.String("dir", "", "work directory (made by up)")
	name := fs.String("name", "fleet", "lab name (up)")
	n := fs.Int("n", 3, "nodes (up)")
	version := fs.String("version", "1", "the fleet.version variable (mason, verify)")
	state := fs.String("state", "", "mason state file (mason); default DIR/mason.state")
	reloads := fs.Int("reloads", 1, "reload lines expected on every node (verify)")
	tampered := fs.String("tampered", "", "node whose config was tampered with and repaired: one reload more (verify)")
	node := fs.String("node", "", "node (tamper)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile (mason)")
	again := fs.Int("again", 0, "apply this many more times in the same process, connections kept (mason)")
	persist := fs.Bool("persist", true, "keep the SSH connections in a holder process (DIR/"+holderDir+") for the next run, as Ansible's ControlPersist does (mason)")
	holdIdle := fs.Duration("hold-idle", 120*time.Second, "the holder's idle time; the Ansible side's ControlPersist is 120s (mason)")
	times := fs.String("times", "", "timings file (report)")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
	_ = fs.Parse(os.Args[2:])
	if os.Args[1] == "report" {
		if err := report(os.Stdout, *times); err != nil {
			fmt.Fprintln(os.Stderr, "fleetbench report:", err)
			os.Exit(1)
		}
		return
	}
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "fleetbench: -dir is required")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if *state == "" {
		*state = filepath.Join(*dir, "mason.state")
	}
	var err error
	switch os.Args[1] {
	case "up":
		err = up(ctx, *dir, *name, *n)
	case "hosts":
		err = printHosts(*dir)
	case "down":
		err = down(ctx, *dir)
	case "mason":
		if *cpuprofile != "" {
			f, ferr := os.Create(*cpuprofile)
			if ferr != nil {
				err = ferr
				break
			}
			_ = pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
		hold := ""
		if *persist {
			hold = filepath.Join(*dir, holderDir)
		}
		err = applyMason(ctx, *dir, *version, *state, *again, hold, *holdIdle)
	case "verify":
		err = verify(ctx, *dir, *version, *reloads, *tampered)
	case "tamper":
		if *node == "" {
			err = errors.New("tamper needs -node")
			break
		}
		err = tamper(ctx, *dir, *node)
	case "reset":
		err = reset(ctx, *dir)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintf(os.Stderr, "fleetbench %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
