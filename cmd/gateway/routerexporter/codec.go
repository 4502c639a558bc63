package routerexporter

import (
	"fmt"

	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc/mem"
)

// exportMethod is the OTLP metrics Export method the workers serve.
const exportMethod = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"

// wireRequest is an ExportMetricsServiceRequest already encoded, in pieces
// that are sent back to back.
type wireRequest struct{ pieces []*wireBuf }

// wireCodec sends a wireRequest's bytes as they are and decodes the
// response into a pmetricotlp.ExportResponse. Its name is proto's, so the
// call is an ordinary application/grpc+proto request to the worker.
type wireCodec struct{}

func (wireCodec) Marshal(v any) (mem.BufferSlice, error) {
	r, ok := v.(*wireRequest)
	if !ok {
		return nil, fmt.Errorf("encoding a request of type %T: only pre-encoded requests are sent", v)
	}
	out := make(mem.BufferSlice, 0, len(r.pieces))
	for _, p := range r.pieces {
		// A SliceBuffer is not returned to any pool when gRPC frees it:
		// the sender recycles the bytes itself once the worker answered.
		out = append(out, mem.SliceBuffer(p.b))
	}
	return out, nil
}

func (wireCodec) Unmarshal(data mem.BufferSlice, v any) error {
	resp, ok := v.(*pmetricotlp.ExportResponse)
	if !ok {
		return fmt.Errorf("decoding a response into %T", v)
	}
	if err := resp.UnmarshalProto(data.Materialize()); err != nil {
		return fmt.Errorf("decoding the worker's response: %w", err)
	}
	return nil
}

func (wireCodec) Name() string { return "proto" }
