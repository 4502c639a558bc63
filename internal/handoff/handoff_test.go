package handoff

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/deltapipeline/deltapipeline/internal/bearertoken"
	"github.com/deltapipeline/deltapipeline/internal/convert"
	"github.com/deltapipeline/deltapipeline/internal/ring"
)

func TestFramesRoundTripAndMalformedOnesAreNamed(t *testing.T) {
	entries := []entry{{entryRecord, []byte("record")}, {entryPoints, []byte{}}, {entryDone, donePayload(7)}}
	frame := appendFrame(nil, frameHeader{epoch: 7, sender: 3}, entries)
	if !IsFrame(frame) {
		t.Fatal("a frame is not recognised as one in the journal")
	}
	h, got, err := parseFrame(frame)
	if err != nil || h.epoch != 7 || h.sender != 3 || len(got) != 3 {
		t.Fatalf("parse: %+v %v %v", h, got, err)
	}
	for i := range entries {
		if got[i].kind != entries[i].kind || !bytes.Equal(got[i].payload, entries[i].payload) {
			t.Errorf("entry %d: %+v, want %+v", i, got[i], entries[i])
		}
	}
	if epoch, err := parseDone(got[2].payload); err != nil || epoch != 7 {
		t.Errorf("done marker: %d %v", epoch, err)
	}
	for name, c := range map[string]struct {
		frame []byte
		want  string
	}{
		"truncated":      {frame[:len(frame)-1], "truncated"},
		"trailing bytes": {append(append([]byte(nil), frame...), 0), "after its last entry"},
		"unknown kind":   {appendFrame(nil, frameHeader{epoch: 1}, []entry{{entryKind(9), nil}}), "unknown kind 9"},
		"version":        {[]byte{frameMarker, 2, 1, 0, 0}, "version 2"},
		"lying count":    {[]byte{frameMarker, frameVersion, 1, 0, 100}, "claims 100 entries"},
		"OTLP request":   {[]byte{0x0a, 0x00}, "not a hand-over frame"},
	} {
		if _, _, err := parseFrame(c.frame); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", name, err, c.want)
		}
	}
}

func FuzzParseFrame(f *testing.F) {
	f.Add(appendFrame(nil, frameHeader{epoch: 3, sender: 1}, []entry{{entryRecord, []byte("x")}, {entryDone, donePayload(3)}}))
	f.Add([]byte{frameMarker, frameVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, entries, err := parseFrame(b)
		if err != nil {
			return
		}
		// What parses encodes to a frame that parses the same (varints
		// may have been written longer than they need).
		h2, again, err := parseFrame(appendFrame(nil, h, entries))
		if err != nil || h2 != h || len(again) != len(entries) {
			t.Fatalf("re-encoded frame parses differently: %+v %v", h2, err)
		}
		for i := range entries {
			if again[i].kind != entries[i].kind || !bytes.Equal(again[i].payload, entries[i].payload) {
				t.Fatalf("entry %d differs after re-encoding", i)
			}
		}
	})
}

func newTestHandoff(t *testing.T, reg prometheus.Registerer) (*Handoff, string) {
	t.Helper()
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("right\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keyer, err := ring.NewKeyer(ring.KeyStreamID, nil)
	if err != nil {
		t.Fatal(err)
	}
	engine, err := convert.NewEngine(convert.Config{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Options{Member: "claude-worker-0", Keyer: keyer, PeerEndpoint: "127.0.0.1:0", TokenFile: token,
		Engine: func() *convert.Engine { return engine }, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	h.Start()
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	doc, _ := ring.Membership{Epoch: 2, Members: []ring.Member{{Name: "claude-worker-0", Endpoint: "a:1", Peer: h.PeerAddr().String()}}}.Marshal()
	if err := h.Membership(doc); err != nil {
		t.Fatal(err)
	}
	h.SetReady(true)
	return h, token
}

func clientWithToken(t *testing.T, addr, token string) *peerClient {
	t.Helper()
	path := filepath.Join(t.TempDir(), "client-token")
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := bearertoken.Open(path, "the test token", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := dialPeer(addr, tokens)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.close() })
	return c
}

func TestPeersWithoutThePipelinesTokenAreRefusedAndCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	h, _ := newTestHandoff(t, reg)
	frame := appendFrame(nil, frameHeader{epoch: 2, sender: 1}, []entry{{entryDone, donePayload(2)}})
	err := clientWithToken(t, h.PeerAddr().String(), "wrong").deliver(context.Background(), frame)
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("a wrong token: %v, want UNAUTHENTICATED", err)
	}
	if n := testutil.ToFloat64(h.metrics.refused.WithLabelValues("unauthenticated")); n != 1 {
		t.Errorf("refused unauthenticated = %v, want 1", n)
	}
	if err := clientWithToken(t, h.PeerAddr().String(), "right").deliver(context.Background(), frame); err != nil {
		t.Fatalf("the pipeline's token: %v", err)
	}
}

func TestFramesOfANewerRingWaitUntilTheWorkerSeesIt(t *testing.T) {
	h, _ := newTestHandoff(t, nil)
	c := clientWithToken(t, h.PeerAddr().String(), "right")
	ahead := appendFrame(nil, frameHeader{epoch: 3, sender: 1}, nil)
	if err := c.deliver(context.Background(), ahead); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "epoch 3") {
		t.Fatalf("a frame of epoch 3 at a worker on epoch 2: %v, want a retryable refusal naming the epochs", err)
	}
	garbage := []byte{frameMarker, frameVersion, 2}
	if err := c.deliver(context.Background(), garbage); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("a malformed frame: %v, want INVALID_ARGUMENT", err)
	}
}
