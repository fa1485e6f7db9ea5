// Package vsphere is the mason provider driver for VMware vSphere, built on
// govmomi and tested against govmomi's in-process vCenter simulator.
//
// A node is a VM cloned from a template into the deployment's folder: a
// linked clone of the template's current snapshot when it has one, a full
// clone otherwise. The VM's instance UUID is derived from the folder and
// the node ID and set in the clone request, so the identity exists before
// the VM does: Create first looks the UUID up and, if a VM has it, resumes
// from whatever step an earlier attempt reached (customize, power on, wait
// for the address) instead of cloning twice. The VM is named after the
// node (name-ID), so two controllers racing on one node meet vCenter's
// DuplicateName fault and converge on the same VM, and a bare clone left by
// a controller that died before applying the identity is adopted, not
// duplicated. Where vCenter (or its simulator) drops the clone request's
// config, the driver applies it with a reconfigure right after the clone.
//
// Before first power-on the clone gets vSphere guest customization
// (hostname, a fixed IPv4 address from Config.AssignIP or DHCP) and
// cloud-init data in guestinfo.metadata / guestinfo.userdata (the login
// user and its SSH keys). Create then waits, with exponential backoff and a
// deadline, until VMware Tools reports the address, and returns the node
// normalized: addresses, interface address, MACs, flavor, image, labels.
// List lists the deployment folder; Delete powers off and destroys.
//
// Every vCenter call passes one circuit breaker (package graph/breaker):
// transport errors and server-side faults count as failures; after
// Config.Breaker.Failures consecutive ones it opens and calls fail at once
// with an error wrapping breaker.ErrOpen until it has let a probe through.
// Transient failures of a step are retried with backoff within
// Config.RetryFor; faults about the request itself (a missing template,
// bad credentials) are not retried. When vCenter drops the session (idle
// timeout, restart) the driver logs in again once and repeats the call.
//
// Credentials come from [Config] or the MASON_VSPHERE_* environment
// ([ConfigFromEnv]); the password is a [Secret] that never prints, and no
// log line or error carries it.
//
// Nodes reach their guests over SSH: Config.Transport builds a node's
// transport from its interface address and login (for example with the
// provider/ssh package). Without it a node has no Transport, and
// provider.Ready, which needs one, does not report it ready. A transport
// from [SSHTransport] offers provider.Units through the VM's systemd
// (package provider/systemd), so roles start daemons on VMs as they do
// everywhere else.
package vsphere
