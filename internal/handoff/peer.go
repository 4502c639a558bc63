package handoff

import (
	"context"
	"errors"
	"fmt"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/deltapipeline/deltapipeline/internal/bearertoken"
)

// The peer protocol is one unary gRPC method whose request is a frame and
// whose empty answer says the receiver made the frame durable and applied
// it. Frames are already encoded (they are journal records as they are),
// so a codec that passes bytes through carries them.
const (
	peerService = "deltapipeline.peer.v1.Peer"
	deliverPath = "/" + peerService + "/Deliver"
	// maxPeerMessage bounds a frame a worker accepts: frames are cut at
	// maxFrameBytes, and only one entry larger than that (a forwarded
	// request near the OTLP receivers' limit) makes a frame bigger.
	maxPeerMessage = 64 << 20
)

type rawMessage struct{ b []byte }

type rawCodec struct{}

func (rawCodec) Name() string { return "deltapipeline-frame" }

func (rawCodec) Marshal(v any) ([]byte, error) {
	m, ok := v.(*rawMessage)
	if !ok {
		return nil, fmt.Errorf("peer codec cannot encode %T", v)
	}
	return m.b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(*rawMessage)
	if !ok {
		return fmt.Errorf("peer codec cannot decode into %T", v)
	}
	// The transport may reuse data once Unmarshal returns.
	m.b = append(m.b[:0], data...)
	return nil
}

// errUnauthenticated names neither the expected nor the received token.
var errUnauthenticated = status.Error(codes.Unauthenticated,
	"missing or invalid peer token: only workers of the same pipeline may hand state over")

// deliverFunc makes a frame durable and applies it; a returned status error
// is the caller's answer.
type deliverFunc func(ctx context.Context, frame []byte) error

type peerServer struct {
	tokens  *bearertoken.File
	deliver deliverFunc
	refused func(reason string)
}

func (s *peerServer) serve(ctx context.Context, frame []byte) (*rawMessage, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if auth := md.Get("authorization"); len(auth) == 0 || !s.tokens.Accepts(auth[0]) {
		s.refused("unauthenticated")
		return nil, errUnauthenticated
	}
	if err := s.deliver(ctx, frame); err != nil {
		return nil, err
	}
	return &rawMessage{}, nil
}

func peerServiceDesc() *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: peerService,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Deliver",
			Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				var m rawMessage
				if err := dec(&m); err != nil {
					return nil, err
				}
				return srv.(*peerServer).serve(ctx, m.b)
			},
		}},
	}
}

// listenPeers binds the peer port.
func listenPeers(endpoint string, s *peerServer) (*grpc.Server, net.Listener, error) {
	ln, err := net.Listen("tcp", endpoint)
	if err != nil {
		return nil, nil, fmt.Errorf("listening for peers on %s: %w", endpoint, err)
	}
	srv := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}), grpc.MaxRecvMsgSize(maxPeerMessage))
	srv.RegisterService(peerServiceDesc(), s)
	return srv, ln, nil
}

// peerClient sends frames to one peer.
type peerClient struct {
	conn   *grpc.ClientConn
	tokens *bearertoken.File
}

func dialPeer(addr string, tokens *bearertoken.File) (*peerClient, error) {
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{}), grpc.MaxCallSendMsgSize(maxPeerMessage)))
	if err != nil {
		return nil, fmt.Errorf("connecting to peer %s: %w", addr, err)
	}
	return &peerClient{conn: conn, tokens: tokens}, nil
}

func (c *peerClient) deliver(ctx context.Context, frame []byte) error {
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", c.tokens.Authorization())
	return c.conn.Invoke(ctx, deliverPath, &rawMessage{b: frame}, &rawMessage{})
}

func (c *peerClient) close() error { return c.conn.Close() }

// errorReason is a short label for a failed call, for the peer error counter.
func errorReason(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	switch status.Code(err) {
	case codes.Unavailable:
		return "unavailable"
	case codes.Unauthenticated:
		return "unauthenticated"
	case codes.FailedPrecondition:
		return "epoch_ahead"
	case codes.DeadlineExceeded:
		return "timeout"
	case codes.InvalidArgument:
		return "refused"
	default:
		return "other"
	}
}
