package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
)

// renderSVG renders DOT source to SVG with Graphviz's dot, which must be
// installed.
func renderSVG(ctx context.Context, w io.Writer, dot []byte) error {
	path, err := exec.LookPath("dot")
	if err != nil {
		return fmt.Errorf("rendering SVG needs Graphviz's dot, which is not installed (Debian: apt-get install graphviz); without -format svg, graph prints DOT: %w", err)
	}
	cmd := exec.CommandContext(ctx, path, "-Tsvg")
	cmd.Stdin = bytes.NewReader(dot)
	cmd.Stdout = w
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("dot -Tsvg: %w: %s", err, stderr.String())
	}
	return nil
}
