package deploy

import (
	"os"
	"path/filepath"
)

// WriteFile writes data to path on the controller with the given mode, all
// or nothing: the data goes to a temporary file in the same directory,
// which is renamed over path only once it is complete, so a crash never
// leaves a half-written certificate, kubeconfig or checksum list.
func WriteFile(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
