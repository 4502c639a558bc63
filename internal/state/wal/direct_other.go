//go:build !linux

package wal

import "os"

// createSegment creates path for appending; direct I/O is used on Linux
// only.
func createSegment(path string) (*os.File, bool, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	return f, false, err
}

// datasync makes the file's data and size durable.
func datasync(f *os.File) error { return f.Sync() }
