package receive

import (
	"context"
	"errors"
	"fmt"
	"net"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/gzip" // senders compress with gzip by default
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

const transportGRPC = "grpc"

// rawMessage carries encoded response bytes through gRPC untouched.
type rawMessage []byte

// requestBytes carries an undecoded request through gRPC so that a
// malformed payload is answered with InvalidArgument by this package rather
// than with the Internal code gRPC uses for codec failures. It holds a
// reference to gRPC's pooled receive buffer instead of a copy: requests
// arrive at full speed, and a fresh copy of each would be garbage the
// collector has to keep up with. The handler calls release once the
// request was consumed: pdata copies every string and byte field it keeps,
// and an EncodedConsumer reads and journals these bytes until it returns.
type requestBytes struct{ buf mem.Buffer }

func (r *requestBytes) bytes() []byte {
	if r.buf == nil {
		return nil
	}
	return r.buf.ReadOnlyData()
}

func (r *requestBytes) release() {
	if r.buf != nil {
		r.buf.Free()
		r.buf = nil
	}
}

// rawCodec passes rawMessage and requestBytes through undecoded and leaves
// every other type to the registered protobuf codec.
type rawCodec struct{ proto encoding.CodecV2 }

func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(*rawMessage); ok {
		return mem.BufferSlice{mem.SliceBuffer(*m)}, nil
	}
	return c.proto.Marshal(v)
}

func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if r, ok := v.(*requestBytes); ok {
		// A request received in one piece is only referenced, not copied;
		// gRPC frees data when this returns, so the reference keeps it.
		r.buf = data.MaterializeToBuffer(receivePool)
		return nil
	}
	return c.proto.Unmarshal(data, v)
}

func (rawCodec) Name() string { return "proto" }

type grpcServer struct {
	srv      *grpc.Server
	listener net.Listener
	in       *ingest
}

func listenGRPC(opts Options, in *ingest) (*grpcServer, error) {
	ln, err := net.Listen("tcp", opts.GRPCEndpoint)
	if err != nil {
		return nil, fmt.Errorf("listening for OTLP/gRPC on %s: %w", opts.GRPCEndpoint, err)
	}
	g := &grpcServer{listener: ln, in: in}
	g.srv = grpc.NewServer(
		grpc.MaxRecvMsgSize(opts.MaxRecvMsgSize),
		grpc.ForceServerCodecV2(rawCodec{proto: encoding.GetCodecV2("proto")}),
		experimental.BufferPool(receivePool),
	)
	g.srv.RegisterService(&metricsServiceDesc, g)
	return g, nil
}

// metricsServiceDesc is the OTLP MetricsService with its one method, Export.
var metricsServiceDesc = grpc.ServiceDesc{
	ServiceName: "opentelemetry.proto.collector.metrics.v1.MetricsService",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Export",
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var in requestBytes
			defer in.release()
			// The token is checked before the request is decoded.
			md, _ := metadata.FromIncomingContext(ctx)
			if !srv.(*grpcServer).in.authenticate(transportGRPC, md.Get("authorization")) {
				return nil, status.Error(codes.Unauthenticated, errUnauthenticated.Error())
			}
			if err := dec(&in); err != nil {
				return nil, err
			}
			return srv.(*grpcServer).export(ctx, &in)
		},
	}},
	Streams:  []grpc.StreamDesc{},
	Metadata: "opentelemetry/proto/collector/metrics/v1/metrics_service.proto",
}

// export ingests one Export call and encodes the answer.
func (g *grpcServer) export(ctx context.Context, body *requestBytes) (*rawMessage, error) {
	resp, err := g.in.exportEncoded(ctx, transportGRPC, body.bytes())
	var malformed *MalformedError
	var refusal *UnavailableError
	switch {
	case errors.As(err, &malformed):
		return nil, status.Error(codes.InvalidArgument, malformed.Error())
	case errors.As(err, &refusal):
		return nil, unavailableStatus(refusal)
	case err != nil:
		return nil, status.Error(codes.Internal, err.Error())
	}
	out, err := resp.MarshalProto()
	if err != nil {
		g.in.refused(transportGRPC, reasonInternal)
		return nil, status.Errorf(codes.Internal, "encoding OTLP ExportMetricsServiceResponse: %v", err)
	}
	m := rawMessage(out)
	return &m, nil
}

// unavailableStatus is UNAVAILABLE with RetryInfo: the code the OTLP
// specification lists as retryable, with the delay the sender should wait.
func unavailableStatus(u *UnavailableError) error {
	st := status.New(codes.Unavailable, u.Error())
	if detailed, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(u.RetryAfter)}); err == nil {
		st = detailed
	}
	return st.Err()
}

func (g *grpcServer) serve() error {
	if err := g.srv.Serve(g.listener); err != nil {
		return fmt.Errorf("serving OTLP/gRPC: %w", err)
	}
	return nil
}

func (g *grpcServer) shutdown(ctx context.Context) error {
	stopped := make(chan struct{})
	go func() {
		g.srv.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
		return nil
	case <-ctx.Done():
		g.srv.Stop()
		return fmt.Errorf("stopping OTLP/gRPC gracefully: %w", ctx.Err())
	}
}
