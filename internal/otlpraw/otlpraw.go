// Package otlpraw sends pre-encoded OTLP metrics requests over gRPC without
// decoding or re-encoding them, so that a load generator spends its CPU on
// sending rather than on protobuf. The benchmarks use it to push the same
// bytes at every pipeline they compare.
package otlpraw

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// ExportMethod is the full gRPC method name of OTLP metrics export.
const ExportMethod = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"

// Message is an encoded protobuf message that passes through the codec
// untouched.
type Message []byte

// codec is gRPC's proto codec, except that a *Message is sent and received
// as raw bytes.
type codec struct{ proto encoding.CodecV2 }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(*Message); ok {
		return mem.BufferSlice{mem.SliceBuffer(*m)}, nil
	}
	return c.proto.Marshal(v)
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	if m, ok := v.(*Message); ok {
		*m = data.Materialize()
		return nil
	}
	return c.proto.Unmarshal(data, v)
}

// Name keeps the content type application/grpc+proto, which OTLP servers
// expect.
func (codec) Name() string { return "proto" }

// CallOption makes a connection send and receive Messages as raw bytes;
// pass it to grpc.WithDefaultCallOptions.
func CallOption() grpc.CallOption {
	return grpc.ForceCodecV2(codec{proto: encoding.GetCodecV2("proto")})
}

// Export sends one encoded ExportMetricsServiceRequest on conn, which must
// have been created with CallOption, and returns the encoded response.
func Export(ctx context.Context, conn *grpc.ClientConn, request []byte) (Message, error) {
	in, out := Message(request), Message(nil)
	if err := conn.Invoke(ctx, ExportMethod, &in, &out); err != nil {
		return nil, err
	}
	return out, nil
}
