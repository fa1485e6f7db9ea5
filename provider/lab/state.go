package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sort"

	"golang.org/x/sys/unix"
)

// labState is what a lab persists in its directory (state.json), so a
// controller started later finds its nodes and never hands out an address
// that a node still uses.
type labState struct {
	Name    string                 `json:"name"`
	Bridge  string                 `json:"bridge"`
	Subnet  netip.Prefix           `json:"subnet"`
	Gateway netip.Addr             `json:"gateway"`
	Nodes   map[string]*nodeRecord `json:"nodes"`
}

// nodeRecord is one node in the state file. A record is written before any
// of the node's resources exist and removed only after all of them are
// gone, so its address stays reserved for as long as anything might use it.
type nodeRecord struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	Addr      netip.Addr        `json:"addr"`
	MAC       string            `json:"mac"`
	HostVeth  string            `json:"host_veth"`
	PID       int               `json:"pid,omitempty"`
	StartTime uint64            `json:"start_time,omitempty"`
	State     string            `json:"state"`
	Labels    map[string]string `json:"labels,omitempty"`
	// Image is ImageHost or ImageSystemd; empty in older state files
	// means ImageHost.
	Image string `json:"image,omitempty"`
	// NetNS is the inode of the node's network namespace, to find the
	// processes in it once its init is gone.
	NetNS uint64 `json:"netns,omitempty"`
}

// systemd reports whether the node boots systemd as its init.
func (r *nodeRecord) systemd() bool { return r.Image == ImageSystemd }

const (
	stateFile = "state.json"
	lockFile  = "lock"
)

// withState runs fn with the lab's state loaded and an exclusive lock held
// across processes (flock on the lab's lock file). If fn returns nil and
// save is true, the state is written back atomically.
func (l *Lab) withState(save bool, fn func(st *labState) error) error {
	lf, err := os.OpenFile(filepath.Join(l.dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		return errTornDown
	}
	if err != nil {
		return fmt.Errorf("open lab lock: %w", err)
	}
	defer lf.Close()
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("lock lab %s: %w", l.dir, err)
	}
	defer unix.Flock(int(lf.Fd()), unix.LOCK_UN) //nolint:errcheck // closing releases it too

	st, err := readState(l.dir)
	if err != nil {
		return err
	}
	if err := fn(st); err != nil {
		return err
	}
	if !save {
		return nil
	}
	return writeState(l.dir, st)
}

func readState(dir string) (*labState, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return &labState{Nodes: map[string]*nodeRecord{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read lab state: %w", err)
	}
	st := &labState{}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, &corruptStateError{path: filepath.Join(dir, stateFile), err: err}
	}
	if st.Nodes == nil {
		st.Nodes = map[string]*nodeRecord{}
	}
	return st, nil
}

// corruptStateError reports a state file that does not parse.
type corruptStateError struct {
	path string
	err  error
}

func (e *corruptStateError) Error() string {
	return fmt.Sprintf("lab state %s is corrupt (Teardown still removes the lab; or fix the file): %v", e.path, e.err)
}

func (e *corruptStateError) Unwrap() error { return e.err }

func writeState(dir string, st *labState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode lab state: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".state-*")
	if err != nil {
		return fmt.Errorf("write lab state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write lab state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync lab state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write lab state: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, stateFile)); err != nil {
		return fmt.Errorf("replace lab state: %w", err)
	}
	return nil
}

// allocAddr returns the lowest free host address of the subnet: not the
// network, broadcast or gateway address, and not held by any record.
func (st *labState) allocAddr() (netip.Addr, error) {
	used := map[netip.Addr]bool{st.Gateway: true}
	for _, r := range st.Nodes {
		used[r.Addr] = true
	}
	p := st.Subnet.Masked()
	last := lastAddr(p)
	for a := p.Addr().Next(); a.IsValid() && a.Less(last); a = a.Next() {
		if !used[a] {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("lab subnet %s is full (%d nodes): delete nodes or use a larger subnet", p, len(st.Nodes))
}

// hostAddrs is how many node addresses the subnet has: all but the
// network, broadcast and gateway addresses.
func (st *labState) hostAddrs() int {
	return 1<<(32-st.Subnet.Bits()) - 3
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := 32 - p.Bits()
	for i := 3; i >= 0 && host > 0; i-- {
		n := min(host, 8)
		b[i] |= byte(1<<n - 1)
		host -= n
	}
	return netip.AddrFrom4(b)
}

func (st *labState) sortedIDs() []string {
	ids := make([]string, 0, len(st.Nodes))
	for id := range st.Nodes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}
