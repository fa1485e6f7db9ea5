package kube

import (
	"context"
	"strings"

	"github.com/masonops/mason/role"
)

// Fetch gets the binaries of the cluster's version onto the controller from
// the deployment's Source (a service: role.Provide[kube.Source]).
type Fetch struct{}

// FetchIn is the version to fetch.
type FetchIn struct {
	Version string `attr:"kubernetes.version"`
	Source  role.Uses[Source]
}

// Meta implements role.Role.
func (Fetch) Meta() role.Meta {
	return role.Meta{Name: "kube-artifacts", Version: "1", Scope: role.ScopeService,
		Doc: "fetches (or builds) the Kubernetes binaries on the controller, cached by version"}
}

// Run implements role.Role.
func (Fetch) Run(ctx context.Context, rc *role.Context, in FetchIn) (Artifacts, error) {
	a, err := in.Source.Value.Fetch(ctx, in.Version, logWriter{rc})
	if err != nil {
		return Artifacts{}, err
	}
	return a, nil
}

// Check reports drift when the cached binaries are gone.
func (Fetch) Check(_ context.Context, _ *role.Context, _ FetchIn, last Artifacts) (string, error) {
	if _, err := readArtifacts(last.Version, last.Dir); err != nil {
		return "cached binaries are gone: " + err.Error(), nil
	}
	return "", nil
}

// logWriter turns a Source's progress lines into the role's log.
type logWriter struct{ rc *role.Context }

func (w logWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimSpace(string(p)), "\n") {
		w.rc.Log().Info(line)
	}
	return len(p), nil
}
