package routerexporter

import (
	"bytes"
	"fmt"
	"os"
	"sync/atomic"
	"time"
)

// tokenSource reads the bearer token the workers expect, again when its
// file changes, so a rotated Secret takes effect without a restart. The file
// is checked at most once per second, by one sender at a time; the others
// keep using the token they have, so no sender waits on the file system.
type tokenSource struct {
	path       string
	current    atomic.Pointer[tokenState]
	refreshing atomic.Bool
}

type tokenState struct {
	token   string
	modTime time.Time
	checked time.Time
}

func newTokenSource(path string) *tokenSource { return &tokenSource{path: path} }

// get returns the current token, "" when none is configured.
func (t *tokenSource) get() (string, error) {
	if t == nil || t.path == "" {
		return "", nil
	}
	st := t.current.Load()
	if st != nil && (time.Since(st.checked) < time.Second || !t.refreshing.CompareAndSwap(false, true)) {
		return st.token, nil
	}
	if st == nil {
		// The first read: every sender needs it, each may do it.
		return t.refresh(nil)
	}
	defer t.refreshing.Store(false)
	return t.refresh(st)
}

func (t *tokenSource) refresh(st *tokenState) (string, error) {
	now := time.Now()
	info, err := os.Stat(t.path)
	if err != nil {
		return "", fmt.Errorf("reading the workers' bearer token: %w", err)
	}
	if st != nil && info.ModTime().Equal(st.modTime) {
		t.current.Store(&tokenState{token: st.token, modTime: st.modTime, checked: now})
		return st.token, nil
	}
	b, err := os.ReadFile(t.path)
	if err != nil {
		return "", fmt.Errorf("reading the workers' bearer token: %w", err)
	}
	token := string(bytes.TrimSpace(b))
	if token == "" {
		return "", fmt.Errorf("the workers' bearer token file %s is empty", t.path)
	}
	t.current.Store(&tokenState{token: token, modTime: info.ModTime(), checked: now})
	return token, nil
}
