package wal

import (
	"errors"
	"os"
	"syscall"
)

// createSegment creates path for appending, with O_DIRECT unless the file
// system refuses it (tmpfs, for one, answers EINVAL), and says which.
func createSegment(path string) (*os.File, bool, error) {
	const flags = os.O_WRONLY | os.O_CREATE | os.O_EXCL
	f, err := os.OpenFile(path, flags|syscall.O_DIRECT, 0o640)
	if err == nil {
		return f, true, nil
	}
	if !errors.Is(err, syscall.EINVAL) {
		return nil, false, err
	}
	f, err = os.OpenFile(path, flags, 0o640)
	return f, false, err
}

// datasync makes the file's data and size durable. fdatasync skips what a
// replay does not need (timestamps), so it is cheaper than fsync.
func datasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if !errors.Is(err, syscall.EINTR) {
			if err != nil {
				return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}
