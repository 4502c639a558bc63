package otlpraw

import (
	"context"
	"net"
	"testing"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// countingServer answers every export with a partial success naming how
// many points it saw, so the test can tell the bytes arrived intact.
type countingServer struct {
	pmetricotlp.UnimplementedGRPCServer
}

func (*countingServer) Export(_ context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	resp := pmetricotlp.NewExportResponse()
	resp.PartialSuccess().SetRejectedDataPoints(int64(req.Metrics().DataPointCount()))
	return resp, nil
}

func TestExportSendsEncodedRequestsToARealOTLPServer(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := grpc.NewServer()
	pmetricotlp.RegisterGRPCServer(server, &countingServer{})
	go func() { _ = server.Serve(lis) }()
	t.Cleanup(server.Stop)

	conn, err := grpc.NewClient(lis.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(CallOption()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })

	md := pmetric.NewMetrics()
	sum := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty().SetEmptySum()
	for range 3 {
		sum.DataPoints().AppendEmpty().SetIntValue(1)
	}
	body, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := Export(context.Background(), conn, body)
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	resp := pmetricotlp.NewExportResponse()
	if err := resp.UnmarshalProto(raw); err != nil {
		t.Fatalf("decoding the raw response: %v", err)
	}
	if got := resp.PartialSuccess().RejectedDataPoints(); got != 3 {
		t.Errorf("server saw %d points, want 3", got)
	}

	if _, err := Export(context.Background(), conn, []byte{0xff, 0xff}); err == nil {
		t.Error("a malformed request was accepted")
	}
}
