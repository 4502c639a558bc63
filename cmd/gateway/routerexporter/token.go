package routerexporter

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"time"
)

// tokenSource reads the bearer token the workers expect, again when its
// file changes, so a rotated Secret takes effect without a restart. The file
// is checked at most once per second.
type tokenSource struct {
	path string

	mu      sync.Mutex
	checked time.Time
	modTime time.Time
	token   string
}

func newTokenSource(path string) *tokenSource { return &tokenSource{path: path} }

// get returns the current token, "" when none is configured.
func (t *tokenSource) get() (string, error) {
	if t == nil || t.path == "" {
		return "", nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	if t.token != "" && now.Sub(t.checked) < time.Second {
		return t.token, nil
	}
	t.checked = now
	info, err := os.Stat(t.path)
	if err != nil {
		return "", fmt.Errorf("reading the workers' bearer token: %w", err)
	}
	if t.token != "" && info.ModTime().Equal(t.modTime) {
		return t.token, nil
	}
	b, err := os.ReadFile(t.path)
	if err != nil {
		return "", fmt.Errorf("reading the workers' bearer token: %w", err)
	}
	token := string(bytes.TrimSpace(b))
	if token == "" {
		return "", fmt.Errorf("the workers' bearer token file %s is empty", t.path)
	}
	t.token, t.modTime = token, info.ModTime()
	return t.token, nil
}
