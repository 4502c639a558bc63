package receive

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// fuzzBodyLimit keeps the size limit in play without making every input
// too large to decode.
const fuzzBodyLimit = 64 << 10

// countingConsumer records how many points each accepted request carried.
type countingConsumer struct{ points []int }

func (c *countingConsumer) Consume(_ context.Context, md pmetric.Metrics) (Outcome, error) {
	c.points = append(c.points, md.DataPointCount())
	return Outcome{}, nil
}

// fuzzIngest is the ingest path of one fuzz input; its metrics go to a
// fresh registry, since each input builds its own.
func fuzzIngest(t *testing.T, c Consumer) *ingest {
	in, err := newIngest(Options{
		MaxInFlight: 1,
		Consumer:    c,
		Registerer:  prometheus.NewRegistry(),
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// addRequestSeeds adds valid requests in both encodings; the committed
// corpus under testdata/fuzz adds malformed and edge-case inputs.
func addRequestSeeds(f *testing.F, asJSON bool, withFlags bool) {
	for _, points := range []int{0, 1, 5} {
		req := pmetricotlp.NewExportRequestFromMetrics(sampleMetrics(points))
		var body []byte
		var err error
		if asJSON {
			body, err = req.MarshalJSON()
		} else {
			body, err = req.MarshalProto()
		}
		if err != nil {
			f.Fatal(err)
		}
		if withFlags {
			f.Add(body, asJSON, points%2 == 1)
		} else {
			f.Add(body)
		}
	}
}

// FuzzHTTPDecode drives the OTLP/HTTP handler with arbitrary bodies, in
// either encoding, optionally gzip-compressed. Whatever the input, the
// handler answers a status the OTLP specification allows with a body the
// sender can decode, accepts exactly what decodes, and hands the consumer
// every point of what it accepts.
func FuzzHTTPDecode(f *testing.F) {
	addRequestSeeds(f, false, true)
	addRequestSeeds(f, true, true)
	f.Fuzz(func(t *testing.T, body []byte, asJSON, gzipped bool) {
		consumer := &countingConsumer{}
		h := &httpServer{maxBody: fuzzBodyLimit, in: fuzzIngest(t, consumer)}

		want := pmetricotlp.NewExportRequest()
		var decodeErr error
		if asJSON {
			decodeErr = want.UnmarshalJSON(body)
		} else {
			decodeErr = want.UnmarshalProto(body)
		}
		fitsLimit := len(body) <= fuzzBodyLimit

		sent := body
		contentType := contentProtobuf
		if asJSON {
			contentType = contentJSON
		}
		req := httptest.NewRequest(http.MethodPost, metricsPath, nil)
		if gzipped {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			_, _ = zw.Write(body)
			_ = zw.Close()
			sent = buf.Bytes()
			req.Header.Set("Content-Encoding", "gzip")
		}
		req.Body = io.NopCloser(bytes.NewReader(sent))
		req.Header.Set("Content-Type", contentType)
		rec := httptest.NewRecorder()
		h.handleMetrics(rec, req)

		if rec.Header().Get("Content-Type") != contentType {
			t.Fatalf("answer Content-Type %q does not mirror the request's %q", rec.Header().Get("Content-Type"), contentType)
		}
		switch {
		case !fitsLimit:
			if rec.Code != http.StatusRequestEntityTooLarge {
				t.Fatalf("body of %d bytes over a %d byte limit answered %d", len(body), fuzzBodyLimit, rec.Code)
			}
		case decodeErr != nil:
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("undecodable body (%v) answered %d, want 400", decodeErr, rec.Code)
			}
		default:
			if rec.Code != http.StatusOK {
				t.Fatalf("decodable body answered %d: %s", rec.Code, rec.Body.Bytes())
			}
		}

		if rec.Code == http.StatusOK {
			resp := pmetricotlp.NewExportResponse()
			var err error
			if asJSON {
				err = resp.UnmarshalJSON(rec.Body.Bytes())
			} else {
				err = resp.UnmarshalProto(rec.Body.Bytes())
			}
			if err != nil {
				t.Fatalf("success body does not decode as ExportMetricsServiceResponse: %v", err)
			}
			if len(consumer.points) != 1 || consumer.points[0] != want.Metrics().DataPointCount() {
				t.Fatalf("consumer got %v points, want one request of %d", consumer.points, want.Metrics().DataPointCount())
			}
			return
		}
		if len(consumer.points) != 0 {
			t.Fatalf("a refused request reached the consumer")
		}
		st := &spb.Status{}
		var err error
		if asJSON {
			err = protojson.Unmarshal(rec.Body.Bytes(), st)
		} else {
			err = proto.Unmarshal(rec.Body.Bytes(), st)
		}
		if err != nil {
			t.Fatalf("error body does not decode as google.rpc.Status: %v", err)
		}
		if st.GetMessage() == "" {
			t.Fatalf("error status %d has no message", rec.Code)
		}
	})
}

// FuzzGRPCDecode drives the OTLP/gRPC Export method with arbitrary message
// bytes: it accepts exactly what decodes as an ExportMetricsServiceRequest
// and refuses the rest with InvalidArgument naming the decoding failure.
func FuzzGRPCDecode(f *testing.F) {
	addRequestSeeds(f, false, false)
	f.Fuzz(func(t *testing.T, body []byte) {
		consumer := &countingConsumer{}
		g := &grpcServer{in: fuzzIngest(t, consumer)}
		want := pmetricotlp.NewExportRequest()
		decodeErr := want.UnmarshalProto(body)

		out, err := g.export(context.Background(), &requestBytes{buf: mem.SliceBuffer(body)})
		if decodeErr != nil {
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "decoding OTLP ExportMetricsServiceRequest") {
				t.Fatalf("undecodable message (%v) answered %v, want InvalidArgument naming the decoding", decodeErr, err)
			}
			if len(consumer.points) != 0 {
				t.Fatalf("a refused request reached the consumer")
			}
			return
		}
		if err != nil {
			t.Fatalf("decodable message refused: %v", err)
		}
		resp := pmetricotlp.NewExportResponse()
		if err := resp.UnmarshalProto(*out); err != nil {
			t.Fatalf("answer does not decode as ExportMetricsServiceResponse: %v", err)
		}
		if len(consumer.points) != 1 || consumer.points[0] != want.Metrics().DataPointCount() {
			t.Fatalf("consumer got %v points, want one request of %d", consumer.points, want.Metrics().DataPointCount())
		}
	})
}
