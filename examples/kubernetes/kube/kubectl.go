package kube

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
)

// kubectl runs kubectl on a control-plane node with the admin kubeconfig,
// as the hard way does on its server. stdin, when set, is the manifest.
func kubectl(ctx context.Context, n *provider.Node, bins Installed, stdin string, args ...string) (string, error) {
	cmd := provider.Command{Args: append([]string{bins.Bin("kubectl"), "--kubeconfig=" + KubernetesDir + "/admin.kubeconfig", "--request-timeout=20s"}, args...), Timeout: time.Minute}
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	res, err := n.Transport.Run(ctx, cmd)
	if err != nil {
		return "", fmt.Errorf("kubectl %s on %s: %w", strings.Join(args, " "), n.Name, err)
	}
	if res.ExitCode != 0 {
		return "", fmt.Errorf("kubectl %s on %s: exit %d: %s", strings.Join(args, " "), n.Name, res.ExitCode, strings.TrimSpace(string(res.Stderr)))
	}
	return string(res.Stdout), nil
}

// kubectlRetry retries a kubectl command for up to limit: the API may be
// settling (a leader election, an informer not yet synced).
func kubectlRetry(ctx context.Context, rc *role.Context, bins Installed, limit time.Duration, stdin string, args ...string) (string, error) {
	var out string
	wait := backoff.WithContext(backoff.NewExponentialBackOff(backoff.WithInitialInterval(200*time.Millisecond),
		backoff.WithMaxInterval(2*time.Second), backoff.WithMaxElapsedTime(limit)), ctx)
	err := backoff.Retry(func() error {
		var err error
		out, err = kubectl(ctx, rc.Node(), bins, stdin, args...)
		return err
	}, wait)
	return out, err
}

// retry runs fn with exponential backoff for at most limit.
func retry(ctx context.Context, limit time.Duration, fn func() error) error {
	wait := backoff.WithContext(backoff.NewExponentialBackOff(backoff.WithInitialInterval(200*time.Millisecond),
		backoff.WithMaxInterval(2*time.Second), backoff.WithMaxElapsedTime(limit)), ctx)
	return backoff.Retry(fn, wait)
}
