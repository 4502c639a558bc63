package receive

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/deltapipeline/deltapipeline/internal/telemetry/telemetrytest"
)

func withTokenFile(path string) option { return func(o *Options) { o.TokenFile = path } }

func writeTokens(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func postWithAuthorization(t *testing.T, url, authorization string, body []byte) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func TestTokenIsRequiredOnBothTransports(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	writeTokens(t, path, "s3cret\n")
	f := newFixture(t, withTokenFile(path))
	client, _ := f.grpcClient(t)
	req := pmetricotlp.NewExportRequestFromMetrics(sampleMetrics(2))

	if _, err := client.Export(t.Context(), req); status.Code(err) != codes.Unauthenticated {
		t.Errorf("gRPC without a token: code %v (%v), want Unauthenticated", status.Code(err), err)
	}
	wrong := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer nope")
	if _, err := client.Export(wrong, req); status.Code(err) != codes.Unauthenticated {
		t.Errorf("gRPC with a wrong token: code %v, want Unauthenticated", status.Code(err))
	}
	good := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer s3cret")
	if _, err := client.Export(good, req); err != nil {
		t.Errorf("gRPC with the token: %v", err)
	}

	pb, err := req.MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	if got := postWithAuthorization(t, f.httpURL, "", pb); got != http.StatusUnauthorized {
		t.Errorf("HTTP without a token: %d, want 401", got)
	}
	if got := postWithAuthorization(t, f.httpURL, "s3cret", pb); got != http.StatusUnauthorized {
		t.Errorf("HTTP with the token but no scheme: %d, want 401", got)
	}
	if got := postWithAuthorization(t, f.httpURL, "Bearer s3cret", pb); got != http.StatusOK {
		t.Errorf("HTTP with the token: %d, want 200", got)
	}

	if got := f.received.Load(); got != 4 {
		t.Errorf("consumer saw %d points, want 4: only the two authenticated requests", got)
	}
	got := telemetrytest.Exposition(t, f.registry)
	for _, want := range []string{
		`deltapipeline_worker_receive_unauthenticated_requests_total{transport="grpc"} 2`,
		`deltapipeline_worker_receive_unauthenticated_requests_total{transport="http"} 2`,
		`deltapipeline_worker_received_points_total{transport="grpc"} 2`,
		`deltapipeline_worker_received_points_total{transport="http"} 2`,
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, got)
		}
	}
}

func TestWithoutTokenFileEveryRequestIsAccepted(t *testing.T) {
	f := newFixture(t)
	client, _ := f.grpcClient(t)
	if _, err := client.Export(t.Context(), pmetricotlp.NewExportRequestFromMetrics(sampleMetrics(1))); err != nil {
		t.Fatal(err)
	}
}

func TestAMissingOrEmptyTokenFileFailsStartUp(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	writeTokens(t, empty, "\n  \n")
	for _, path := range []string{filepath.Join(dir, "missing"), empty} {
		o := Options{
			GRPCEndpoint: "127.0.0.1:0", HTTPEndpoint: "127.0.0.1:0", MaxRecvMsgSize: 1, MaxRequestBody: 1, MaxInFlight: 1,
			Consumer: ConsumerFunc(nil), Registerer: prometheus.NewRegistry(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			TokenFile: path,
		}
		if s, err := Listen(o); err == nil {
			_ = s.Shutdown(t.Context())
			t.Errorf("Listen with token file %s succeeded, want an error", path)
		} else if !strings.Contains(err.Error(), "token file") {
			t.Errorf("error %q does not name the token file", err)
		}
	}
}
