package bearertoken

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTokenFileIsReadAgainAfterItChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	write(t, path, "old\n")
	now := time.Unix(1000, 0)
	tokens, err := Open(path, "the test token file", slog.New(slog.NewTextHandler(io.Discard, nil)), func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	// Several tokens, one per line with a comment, as bearertokenauth reads them.
	write(t, path, "new  # rotated\n\nnewer\n")
	if !tokens.Accepts("Bearer old") || tokens.Accepts("Bearer new") {
		t.Fatal("the file was read again before recheckInterval passed")
	}
	now = now.Add(recheckInterval)
	if tokens.Accepts("Bearer old") || !tokens.Accepts("Bearer new") || !tokens.Accepts("Bearer newer") {
		t.Fatal("the rotated tokens were not taken after recheckInterval")
	}
	// A file that disappears keeps the tokens last read.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	now = now.Add(recheckInterval)
	if !tokens.Accepts("Bearer new") {
		t.Fatal("a failed read dropped the tokens last read")
	}
}

func TestAuthorizationIsTheFirstToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	write(t, path, "first second\nthird\n")
	tokens, err := Open(path, "the test token file", slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := tokens.Authorization(); got != "Bearer first" {
		t.Fatalf("Authorization() = %q, want %q", got, "Bearer first")
	}
}

func TestAnEmptyFileNamesItsPurpose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	write(t, path, "\n\n")
	_, err := Open(path, "the peer token file", slog.New(slog.DiscardHandler), nil)
	if err == nil || err.Error() != "the peer token file "+path+" holds no token" {
		t.Fatalf("Open of an empty file: %v", err)
	}
}
