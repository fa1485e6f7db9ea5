package kube

import (
	"context"
	"fmt"
	"time"

	"github.com/masonops/mason/role"
)

// Scheduler runs kube-scheduler with leader election from the hard way's
// KubeSchedulerConfiguration.
type Scheduler struct{}

// SchedulerIn is its dependency list.
type SchedulerIn struct {
	Kubeconfigs role.Same[ControlPlaneKubeconfigsOut]
	Bins        role.Same[ControlPlaneBinariesOut]
}

// SchedulerOut is a running scheduler.
type SchedulerOut struct{ Node string }

// Meta implements role.Role.
func (Scheduler) Meta() role.Meta {
	return role.Meta{Name: "kube-scheduler", Version: "1", Doc: "runs kube-scheduler (leader-elected)",
		Requires: []string{"kube-apiserver", "kube-api-lb"}}
}

// SchedulerConfig is /etc/kubernetes/config/kube-scheduler.yaml.
const SchedulerConfig = "/etc/kubernetes/config/kube-scheduler.yaml"

// Run implements role.Role.
func (Scheduler) Run(ctx context.Context, rc *role.Context, in SchedulerIn) (SchedulerOut, error) {
	cfg := fmt.Sprintf(`apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: %s
leaderElection:
  leaderElect: true
`, in.Kubeconfigs.Value.Scheduler.File)
	if err := rc.WriteFile(ctx, SchedulerConfig, []byte(cfg), 0o644); err != nil {
		return SchedulerOut{}, err
	}
	svc := service{Name: "kube-scheduler", Description: "Kubernetes Scheduler", Args: []string{
		in.Bins.Value.Bin("kube-scheduler"),
		"--config=" + SchedulerConfig,
		"--authentication-kubeconfig=" + in.Kubeconfigs.Value.Scheduler.File,
		"--authorization-kubeconfig=" + in.Kubeconfigs.Value.Scheduler.File,
		"--bind-address=0.0.0.0",
		"--v=1",
	}}
	sig := digest(cfg, in.Kubeconfigs.Value.Scheduler.Sum)
	if err := svc.ensure(ctx, rc, sig); err != nil {
		return SchedulerOut{}, err
	}
	if err := svc.waitFor(ctx, rc.Node(), 60*time.Second, dialable(ctx, rc.Node().InterfaceAddr.String()+":10259")); err != nil {
		return SchedulerOut{}, err
	}
	return SchedulerOut{Node: rc.Node().Name}, nil
}

// Check reports drift when it is not running.
func (Scheduler) Check(ctx context.Context, rc *role.Context, _ SchedulerIn, _ SchedulerOut) (string, error) {
	return driftIfStopped(ctx, rc, service{Name: "kube-scheduler"}), nil
}
