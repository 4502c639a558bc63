package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"

	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	_ "google.golang.org/grpc/encoding/gzip" // exporters may compress
)

// sink is the receive-and-discard OTLP/gRPC server: it decodes every
// request, as any receiver must, counts its points and drops them. It is
// both the common destination of the pipelines under test and, measured on
// its own, the upper bound of what a receiver can accept on this machine.
type sink struct {
	pmetricotlp.UnimplementedGRPCServer
	points atomic.Int64
}

func (s *sink) Export(_ context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	s.points.Add(int64(req.Metrics().DataPointCount()))
	return pmetricotlp.NewExportResponse(), nil
}

// runSink serves OTLP/gRPC on grpcAddr and the received point count as
// plain text on statsAddr until ctx ends.
func runSink(ctx context.Context, grpcAddr, statsAddr string) error {
	ln, err := net.Listen("tcp", grpcAddr)
	if err != nil {
		return fmt.Errorf("sink listening on %s: %w", grpcAddr, err)
	}
	s := &sink{}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(64 << 20))
	pmetricotlp.RegisterGRPCServer(srv, s)

	stats := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(strconv.FormatInt(s.points.Load(), 10)))
	})}
	statsLn, err := net.Listen("tcp", statsAddr)
	if err != nil {
		ln.Close()
		return fmt.Errorf("sink stats listening on %s: %w", statsAddr, err)
	}
	go func() { _ = stats.Serve(statsLn) }()
	go func() {
		<-ctx.Done()
		srv.Stop()
		_ = stats.Close()
	}()
	if err := srv.Serve(ln); err != nil && ctx.Err() == nil {
		return fmt.Errorf("sink serving: %w", err)
	}
	return nil
}
