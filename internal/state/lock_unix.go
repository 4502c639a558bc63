//go:build unix

package state

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockDirectory takes an exclusive advisory lock on dir/LOCK so that two
// processes never write the same checkpoint and log. The kernel drops the
// lock when the process dies, so a crashed worker never blocks its restart.
func lockDirectory(dir string) (release func() error, err error) {
	path := dir + string(os.PathSeparator) + "LOCK"
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("opening lock file %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("state directory %s is in use by another worker process", dir)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return f.Close, nil
}
