package receive

import (
	"bufio"
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// tokenRecheckInterval is how often the token file is read again. The
// kubelet refreshes a mounted Secret within about a minute of its change, so
// a second's delay in noticing it is negligible, and one small read a second
// costs nothing next to the requests it guards.
const tokenRecheckInterval = time.Second

// errUnauthenticated is the answer to a request without a valid token. It
// names neither the expected nor the received value.
var errUnauthenticated = errors.New("missing or invalid bearer token: the worker accepts OTLP only from its pipeline's gateways")

// tokenFile holds the bearer tokens a request may carry, read from a file in
// the format of the collector's bearertokenauth extension (one token per
// line, the first word of each non-empty line), so the gateways' and the
// worker's side of a mounted Secret parse it alike. The file is read again
// every tokenRecheckInterval, so a rotated Secret takes effect without a
// restart; a read that fails keeps the tokens last read and is logged.
type tokenFile struct {
	path   string
	logger *slog.Logger
	now    func() time.Time

	mu        sync.Mutex
	values    [][]byte // "Bearer <token>" for each token
	checkedAt time.Time
	failing   bool
}

// newTokenFile reads path once; a worker whose token file is missing or
// empty must not start, since it could accept nothing.
func newTokenFile(path string, logger *slog.Logger, now func() time.Time) (*tokenFile, error) {
	t := &tokenFile{path: path, logger: logger, now: now}
	values, err := readTokenFile(path)
	if err != nil {
		return nil, err
	}
	t.values, t.checkedAt = values, now()
	return t, nil
}

func readTokenFile(path string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the OTLP receivers' token file: %w", err)
	}
	var values [][]byte
	s := bufio.NewScanner(bytes.NewReader(data))
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) > 0 {
			values = append(values, []byte("Bearer "+fields[0]))
		}
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("reading the OTLP receivers' token file %s: %w", path, err)
	}
	if len(values) == 0 {
		return nil, fmt.Errorf("the OTLP receivers' token file %s holds no token", path)
	}
	return values, nil
}

// current returns the accepted values, reading the file again when the
// last read is older than tokenRecheckInterval.
func (t *tokenFile) current() [][]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	if now := t.now(); now.Sub(t.checkedAt) >= tokenRecheckInterval {
		t.checkedAt = now
		values, err := readTokenFile(t.path)
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

// accepts reports whether authorization, the value of the request's
// authorization header or metadata, is one of the tokens. The comparison
// takes the same time whichever byte differs.
func (t *tokenFile) accepts(authorization string) bool {
	got := []byte(authorization)
	ok := false
	for _, want := range t.current() {
		if subtle.ConstantTimeCompare(want, got) == 1 {
			ok = true
		}
	}
	return ok
}
