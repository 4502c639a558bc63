package receive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configure both OTLP servers.
type Options struct {
	GRPCEndpoint string
	HTTPEndpoint string
	// MaxRecvMsgSize bounds one gRPC request after decompression, in bytes.
	MaxRecvMsgSize int
	// MaxRequestBody bounds one HTTP request body after decompression, in bytes.
	MaxRequestBody int64
	// MaxInFlight bounds requests consumed concurrently across both servers.
	MaxInFlight int
	// TokenFile, when set, names a file of accepted bearer tokens (one per
	// line); a request whose authorization header or metadata is not
	// "Bearer <one of them>" is refused as unauthenticated. Empty accepts
	// every request.
	TokenFile string
	Consumer  Consumer
	// Registerer takes the receivers' self-metrics.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Servers are the bound OTLP listeners.
type Servers struct {
	grpc *grpcServer
	http *httpServer
}

// Listen binds both listeners, so that port conflicts fail start-up before
// the worker reports ready.
func Listen(opts Options) (*Servers, error) {
	if opts.Consumer == nil || opts.Registerer == nil || opts.Logger == nil {
		return nil, errors.New("receive options need a consumer, a metrics registerer and a logger")
	}
	if opts.MaxInFlight <= 0 || opts.MaxRecvMsgSize <= 0 || opts.MaxRequestBody <= 0 {
		return nil, fmt.Errorf("receive limits must be positive: in flight %d, gRPC message %d, HTTP body %d",
			opts.MaxInFlight, opts.MaxRecvMsgSize, opts.MaxRequestBody)
	}
	in, err := newIngest(opts)
	if err != nil {
		return nil, err
	}
	g, err := listenGRPC(opts, in)
	if err != nil {
		return nil, err
	}
	h, err := listenHTTP(opts, in)
	if err != nil {
		g.listener.Close()
		return nil, err
	}
	return &Servers{grpc: g, http: h}, nil
}

// GRPCAddr is the bound OTLP/gRPC address.
func (s *Servers) GRPCAddr() net.Addr { return s.grpc.listener.Addr() }

// HTTPAddr is the bound OTLP/HTTP address.
func (s *Servers) HTTPAddr() net.Addr { return s.http.listener.Addr() }

// Serve runs both servers until Shutdown; it returns the first serving error.
func (s *Servers) Serve() error {
	errs := make(chan error, 2)
	go func() { errs <- s.grpc.serve() }()
	go func() { errs <- s.http.serve() }()
	return errors.Join(<-errs, <-errs)
}

// Shutdown stops accepting requests and waits for those in flight, up to ctx.
func (s *Servers) Shutdown(ctx context.Context) error {
	return errors.Join(s.grpc.shutdown(ctx), s.http.shutdown(ctx))
}
