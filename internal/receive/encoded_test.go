package receive

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
)

// encodedRecorder keeps what an EncodedConsumer was handed.
type encodedRecorder struct {
	mu      sync.Mutex
	encoded [][]byte
	plain   int
}

func (r *encodedRecorder) Consume(context.Context, pmetric.Metrics) (Outcome, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.plain++
	return Outcome{}, nil
}

func (r *encodedRecorder) ConsumeEncoded(_ context.Context, _ pmetric.Metrics, encoded []byte) (Outcome, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Only valid during the call: keep a copy.
	r.encoded = append(r.encoded, bytes.Clone(encoded))
	return Outcome{}, nil
}

// A request that arrives as protobuf reaches an EncodedConsumer with its
// bytes as received (gRPC; HTTP, gzip or not); one in JSON has no protobuf
// bytes to hand over and reaches Consume.
func TestEncodedConsumerGetsTheProtobufBytesAsReceived(t *testing.T) {
	rec := &encodedRecorder{}
	f := newFixture(t, withConsumer(rec))
	req := pmetricotlp.NewExportRequestFromMetrics(sampleMetrics(3))
	pb, err := req.MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	js, err := req.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	client, _ := f.grpcClient(t)
	if _, err := client.Export(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		contentType, encoding string
		body                  []byte
	}{
		{"application/x-protobuf", "", pb},
		{"application/x-protobuf", "gzip", gzipped(t, pb)},
		{"application/json", "", js},
	} {
		if a, _ := post(t, f.httpURL, c.contentType, c.encoding, c.body); a.StatusCode != 200 {
			t.Fatalf("%s %s: status %d", c.contentType, c.encoding, a.StatusCode)
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.encoded) != 3 || rec.plain != 1 {
		t.Fatalf("%d requests with their encoding, %d without; want 3 and 1 (JSON)", len(rec.encoded), rec.plain)
	}
	for i, got := range rec.encoded {
		if !bytes.Equal(got, pb) {
			t.Errorf("request %d: the consumer got %d bytes that are not the %d sent", i, len(got), len(pb))
		}
	}
}
