package lab

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/provider"
)

func TestSmoke(t *testing.T) {
	l := openLab(t, Options{})
	p := l.Provider()
	ctx := ctxT(t, time.Minute)
	n, err := p.Create(ctx, provider.NodeSpec{ID: "a1"})
	require.NoError(t, err)
	t.Logf("%+v", n)
	require.NoError(t, provider.Ready(ctx, n))
	res, err := n.Transport.Run(ctx, provider.Command{Args: []string{"sh", "-c", "hostname; ip -br addr; ip route; mount | tail -6; ps -ef"}})
	require.NoError(t, err)
	t.Logf("%s %s %d", res.Stdout, res.Stderr, res.ExitCode)
}
