package routerexporter

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTokenSourceFollowsTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	ts := newTokenSource(path)
	if _, err := ts.get(); err == nil || !strings.Contains(err.Error(), "bearer token") {
		t.Fatalf("missing file: error %v", err)
	}
	if err := os.WriteFile(path, []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := ts.get(); err != nil || got != "first" {
		t.Fatalf("got %q, %v; want first", got, err)
	}
	if err := os.WriteFile(path, []byte("second"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, time.Now(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, _ := ts.get(); got != "first" {
		t.Fatalf("re-read within a second of the last check: %q", got)
	}
	time.Sleep(1100 * time.Millisecond)
	if got, err := ts.get(); err != nil || got != "second" {
		t.Fatalf("after the file changed: %q, %v; want second", got, err)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := (newTokenSource(path)).get(); err == nil || got != "" {
		t.Fatalf("empty file: %q, %v", got, err)
	}
	if got, err := (*tokenSource)(nil).get(); err != nil || got != "" {
		t.Fatalf("no token configured: %q, %v", got, err)
	}
}
