package crypto

import (
	"fmt"
	"os"
	"path/filepath"
)

// ReadKeysetFiles returns the wrapped contents of every keyset file in dir
// (name -> bytes), as stored: wrapped by the master key, so they can be
// copied to where other nodes of a cluster read them without the master
// key ever leaving.
func ReadKeysetFiles(dir string) (map[string][]byte, error) {
	out := make(map[string][]byte)
	for _, name := range KeysetNames() {
		b, err := os.ReadFile(filepath.Join(dir, name+".json"))
		if err != nil {
			return nil, fmt.Errorf("failed to read keyset %s: %w", name, err)
		}
		out[name] = b
	}
	return out, nil
}

// WriteKeysetFile replaces keyset file name in dir with data (the wrapped
// contents another node wrote), atomically, mode 0600. LoadKeysets checks
// it as it checks any keyset file.
func WriteKeysetFile(dir, name string, data []byte) error {
	if _, err := keysetParameters(name); err != nil {
		return err
	}
	if err := writeFileAtomic(dir, name+".json", data, true); err != nil {
		return err
	}
	return syncDir(dir)
}
