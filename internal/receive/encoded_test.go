package receive

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/status"

	"github.com/deltapipeline/deltapipeline/internal/telemetry/telemetrytest"
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

func (r *encodedRecorder) ConsumeEncoded(_ context.Context, encoded []byte) (int, Outcome, error) {
	md, err := Decode(encoded)
	if err != nil {
		return 0, Outcome{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// Only valid during the call: keep a copy.
	r.encoded = append(r.encoded, bytes.Clone(encoded))
	return md.DataPointCount(), Outcome{}, nil
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

// An EncodedConsumer decodes what it must itself; the request it finds
// malformed is refused as the transports refuse one they cannot decode,
// and the points it read are counted as received.
func TestEncodedConsumerRefusesMalformedRequests(t *testing.T) {
	f := newFixture(t, withConsumer(&encodedRecorder{}))
	malformed := []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}
	_, conn := f.grpcClient(t)
	in, out := rawMessage(malformed), rawMessage(nil)
	err := conn.Invoke(t.Context(), "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export", &in, &out,
		grpc.ForceCodecV2(rawCodec{proto: encoding.GetCodecV2("proto")}))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "decoding OTLP") {
		t.Fatalf("gRPC: %v, want InvalidArgument saying what failed", err)
	}
	if a, body := post(t, f.httpURL, "application/x-protobuf", "", malformed); a.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "decoding OTLP") {
		t.Fatalf("HTTP: status %d (%s), want 400 saying what failed", a.StatusCode, body)
	}
	client, _ := f.grpcClient(t)
	if _, err := client.Export(t.Context(), pmetricotlp.NewExportRequestFromMetrics(sampleMetrics(3))); err != nil {
		t.Fatal(err)
	}
	got := telemetrytest.Exposition(t, f.registry)
	for _, want := range []string{
		`deltapipeline_worker_refused_requests_total{reason="malformed",transport="grpc"} 1`,
		`deltapipeline_worker_refused_requests_total{reason="malformed",transport="http"} 1`,
		`deltapipeline_worker_received_points_total{transport="grpc"} 3`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("self-metrics lack %q:\n%s", want, got)
		}
	}
}
