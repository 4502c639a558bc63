// Package bearertoken reads the bearer tokens a worker's servers accept
// and its clients present, from a mounted Secret in the format of the
// collector's bearertokenauth extension, and checks them in constant time.
// The OTLP receivers and the peer protocol share it.
package bearertoken

import (
	"bufio"
	"bytes"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// recheckInterval is how often the token file is read again. The kubelet
// refreshes a mounted Secret within about a minute of its change, so a
// second's delay in noticing it is negligible, and one small read a second
// costs nothing next to the requests it guards.
const recheckInterval = time.Second

// File holds the bearer tokens a request may carry, read from a file in
// the format of the collector's bearertokenauth extension (one token per
// line, the first word of each non-empty line), so the gateways' and the
// worker's side of a mounted Secret parse it alike. The file is read again
// every recheckInterval, so a rotated Secret takes effect without a
// restart; a read that fails keeps the tokens last read and is logged.
type File struct {
	path    string
	purpose string
	logger  *slog.Logger
	now     func() time.Time

	mu        sync.Mutex
	values    [][]byte // "Bearer <token>" for each token
	checkedAt time.Time
	failing   bool
}

// Open reads path once; a server whose token file is missing or empty
// must not start, since it could accept nothing. purpose names the file in
// errors ("the OTLP receivers' token file").
func Open(path, purpose string, logger *slog.Logger, now func() time.Time) (*File, error) {
	if now == nil {
		now = time.Now
	}
	t := &File{path: path, purpose: purpose, logger: logger, now: now}
	values, err := read(path, purpose)
	if err != nil {
		return nil, err
	}
	t.values, t.checkedAt = values, now()
	return t, nil
}

func read(path, purpose string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", purpose, err)
	}
	var values [][]byte
	s := bufio.NewScanner(bytes.NewReader(data))
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) > 0 {
			values = append(values, []byte("Bearer "+fields[0]))
		}
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("reading %s %s: %w", purpose, path, err)
	}
	if len(values) == 0 {
		return nil, fmt.Errorf("%s %s holds no token", purpose, path)
	}
	return values, nil
}

// current returns the accepted values, reading the file again when the
// last read is older than recheckInterval.
func (t *File) current() [][]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	if now := t.now(); now.Sub(t.checkedAt) >= recheckInterval {
		t.checkedAt = now
		values, err := read(t.path, t.purpose)
		switch {
		case err != nil && !t.failing:
			t.failing = true
			t.logger.Warn("keeping the tokens last read", "error", err)
		case err == nil:
			if t.failing {
				t.logger.Info("token file readable again", "path", t.path)
			}
			t.failing = false
			t.values = values
		}
	}
	return t.values
}

// Accepts reports whether authorization, the value of the request's
// authorization header or metadata, is one of the tokens. The comparison
// takes the same time whichever byte differs.
func (t *File) Accepts(authorization string) bool {
	got := []byte(authorization)
	ok := false
	for _, want := range t.current() {
		if subtle.ConstantTimeCompare(want, got) == 1 {
			ok = true
		}
	}
	return ok
}

// Authorization is the header value a client presents: the file's first
// token.
func (t *File) Authorization() string { return string(t.current()[0]) }
