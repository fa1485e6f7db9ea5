package cli

import (
	"github.com/masonops/mason/seal"
)

// kek is the key-encryption key the deployment's journal seals its
// secrets with (graph.Deployment.UseKEK): the one deploy.Open loaded and
// checked against the state. Only a look (plan, graph, status, why) at a
// deployment the state does not hold yet has none — apply makes it — and
// plans with a throwaway key: nothing is sealed yet, so there is nothing
// to open, and a look writes nothing.
func (s *session) kek() *seal.KEK {
	if k := s.dep.KEK(); k != nil {
		return k
	}
	if _, recorded := s.dep.Identity(); recorded {
		return nil // destroy: graph refuses to plan secrets without a key
	}
	k, err := seal.Generate()
	if err != nil {
		return nil // the plan says a key is missing
	}
	return k
}
