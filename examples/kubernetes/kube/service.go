package kube

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
)

// service is one long-running program on a node, described as the systemd
// unit the hard way writes (/etc/systemd/system/NAME.service). The unit file
// is written for the operator to read; until mason's units land the program
// is started from the same command line in its own session, with its PID in
// /run/NAME.pid and its output in /var/log/kubernetes/NAME.log.
type service struct {
	Name        string
	Description string
	Args        []string
	// After names units this one starts after (containerd for kubelet).
	After []string
}

func (s service) unitFile() string {
	after := ""
	if len(s.After) > 0 {
		after = "After=" + strings.Join(s.After, " ") + "\nRequires=" + strings.Join(s.After, " ") + "\n"
	}
	return fmt.Sprintf(`# written by mason (examples/kubernetes)
[Unit]
Description=%s
%s
[Service]
ExecStart=%s
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
`, s.Description, after, strings.Join(s.Args, " \\\n  "))
}

func (s service) pidFile() string { return "/run/" + s.Name + ".pid" }
func (s service) logFile() string { return LogDir + "/" + s.Name + ".log" }

// start writes the unit file and (re)starts the program: a running
// instance is stopped first, so a changed configuration takes effect.
func (s service) start(ctx context.Context, rc *role.Context) error {
	if err := rc.WriteFile(ctx, "/etc/systemd/system/"+s.Name+".service", []byte(s.unitFile()), 0o644); err != nil {
		return err
	}
	if err := s.stop(ctx, rc.Node()); err != nil {
		return err
	}
	quoted := make([]string, len(s.Args))
	for i, a := range s.Args {
		quoted[i] = shellQuote(a)
	}
	script := fmt.Sprintf(`mkdir -p %s && echo $$ > %s && exec %s >>%s 2>&1 </dev/null`,
		LogDir, s.pidFile(), strings.Join(quoted, " "), s.logFile())
	if _, err := rc.Exec(ctx, "setsid", "-f", "sh", "-c", script); err != nil {
		return fmt.Errorf("starting %s: %w", s.Name, err)
	}
	return nil
}

// running reports whether the program's process is alive.
func (s service) running(ctx context.Context, n *provider.Node) bool {
	res, err := n.Transport.Run(ctx, provider.Command{Args: []string{"sh", "-c", `test -f ` + s.pidFile() + ` && kill -0 "$(cat ` + s.pidFile() + `)"`}})
	return err == nil && res.ExitCode == 0
}

// stop ends the program and waits (at most 20s) for it to exit.
func (s service) stop(ctx context.Context, n *provider.Node) error {
	script := fmt.Sprintf(`f=%s; [ -f $f ] || exit 0; p=$(cat $f); kill $p 2>/dev/null || { rm -f $f; exit 0; }
for i in $(seq 200); do kill -0 $p 2>/dev/null || { rm -f $f; exit 0; }; sleep 0.1; done; kill -9 $p; rm -f $f`, s.pidFile())
	res, err := n.Transport.Run(ctx, provider.Command{Args: []string{"sh", "-c", script}})
	if err != nil {
		return err
	}
	return res.Err(provider.Command{Args: []string{"stop", s.Name}})
}

// logTail returns the last lines of the program's log, for errors.
func (s service) logTail(ctx context.Context, n *provider.Node) string {
	b, _ := n.Transport.Get(ctx, s.logFile())
	return tailLines(string(b), 12)
}

// waitFor retries probe until it succeeds, the program exits, or limit
// passes. A program that exited fails at once with its log's last lines.
func (s service) waitFor(ctx context.Context, n *provider.Node, limit time.Duration, probe func() error) error {
	wait := backoff.WithContext(backoff.NewExponentialBackOff(backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(time.Second), backoff.WithMaxElapsedTime(limit)), ctx)
	err := backoff.Retry(func() error {
		if !s.running(ctx, n) {
			return backoff.Permanent(fmt.Errorf("%s exited; last lines of %s:\n%s", s.Name, s.logFile(), s.logTail(ctx, n)))
		}
		return probe()
	}, wait)
	if err != nil {
		return fmt.Errorf("%s on %s: %w", s.Name, n.Name, err)
	}
	return nil
}

// dialable is a probe that a TCP port accepts connections.
func dialable(ctx context.Context, addr string) func() error {
	return func() error {
		c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,@+%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// driftIfStopped is the Check of every role that runs a service.
func driftIfStopped(ctx context.Context, rc *role.Context, s service) string {
	if !s.running(ctx, rc.Node()) {
		return s.Name + " is not running on " + rc.Node().Name
	}
	return ""
}
