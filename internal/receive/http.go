package receive

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

const (
	transportHTTP   = "http"
	metricsPath     = "/v1/metrics"
	contentProtobuf = "application/x-protobuf"
	contentJSON     = "application/json"
)

type httpServer struct {
	srv      *http.Server
	listener net.Listener
	opts     Options
	adm      *admission
}

func listenHTTP(opts Options, adm *admission) (*httpServer, error) {
	ln, err := net.Listen("tcp", opts.HTTPEndpoint)
	if err != nil {
		return nil, fmt.Errorf("listening for OTLP/HTTP on %s: %w", opts.HTTPEndpoint, err)
	}
	h := &httpServer{listener: ln, opts: opts, adm: adm}
	mux := http.NewServeMux()
	mux.HandleFunc(metricsPath, h.handleMetrics)
	h.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
	}
	return h, nil
}

// bodyEncoding is the request's content type, which the response mirrors.
type bodyEncoding int

const (
	encodingProtobuf bodyEncoding = iota
	encodingJSON
)

// requestEncoding maps Content-Type to an OTLP bodyEncoding.
func requestEncoding(contentType string) (bodyEncoding, bool) {
	mediaType, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return 0, false
	}
	switch mediaType {
	case contentProtobuf:
		return encodingProtobuf, true
	case contentJSON:
		return encodingJSON, true
	default:
		return 0, false
	}
}

func (h *httpServer) handleMetrics(w http.ResponseWriter, r *http.Request) {
	enc, known := requestEncoding(r.Header.Get("Content-Type"))
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.fail(w, enc, "method_not_allowed", http.StatusMethodNotAllowed, codes.Unimplemented,
			fmt.Sprintf("method %s is not allowed on %s; use POST", r.Method, metricsPath), 0)
		return
	}
	if !known {
		h.fail(w, encodingJSON, "unsupported_media_type", http.StatusUnsupportedMediaType, codes.InvalidArgument,
			fmt.Sprintf("content type %q is not supported; use %s or %s",
				r.Header.Get("Content-Type"), contentProtobuf, contentJSON), 0)
		return
	}

	body, status, err := h.readBody(w, r)
	if err != nil {
		reason, code := "malformed", codes.InvalidArgument
		switch status {
		case http.StatusRequestEntityTooLarge:
			reason, code = "too_large", codes.ResourceExhausted
		case http.StatusUnsupportedMediaType:
			reason = "unsupported_media_type"
		}
		h.fail(w, enc, reason, status, code, err.Error(), 0)
		return
	}

	req := pmetricotlp.NewExportRequest()
	if enc == encodingJSON {
		err = req.UnmarshalJSON(body)
	} else {
		err = req.UnmarshalProto(body)
	}
	if err != nil {
		h.fail(w, enc, "malformed", http.StatusBadRequest, codes.InvalidArgument,
			fmt.Sprintf("decoding OTLP ExportMetricsServiceRequest: %v", err), 0)
		return
	}

	if !h.adm.tryAcquire() {
		h.fail(w, enc, "overloaded", http.StatusServiceUnavailable, codes.Unavailable, errOverloaded.Error(), DefaultRetryAfter)
		return
	}
	defer h.adm.release()

	md := req.Metrics()
	h.opts.Metrics.ReceivedPoints.WithLabelValues(transportHTTP).Add(float64(md.DataPointCount()))
	outcome, err := h.opts.Consumer.Consume(r.Context(), md)
	if err != nil {
		u := unavailableFrom(err)
		h.opts.Logger.WarnContext(r.Context(), "refusing OTLP/HTTP request", "reason", u.Reason, "error", err)
		h.fail(w, enc, u.Reason, http.StatusServiceUnavailable, codes.Unavailable, u.Error(), u.RetryAfter)
		return
	}

	resp := pmetricotlp.NewExportResponse()
	if outcome.RejectedPoints > 0 {
		resp.PartialSuccess().SetRejectedDataPoints(outcome.RejectedPoints)
		resp.PartialSuccess().SetErrorMessage(outcome.Message)
	}
	var out []byte
	if enc == encodingJSON {
		out, err = resp.MarshalJSON()
	} else {
		out, err = resp.MarshalProto()
	}
	if err != nil {
		h.fail(w, enc, "internal", http.StatusInternalServerError, codes.Internal,
			fmt.Sprintf("bodyEncoding OTLP ExportMetricsServiceResponse: %v", err), 0)
		return
	}
	w.Header().Set("Content-Type", contentTypeOf(enc))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// readBody reads the body, decompressing gzip, and enforces the size limit
// on the decompressed bytes so that a small compressed bomb is refused too.
func (h *httpServer) readBody(w http.ResponseWriter, r *http.Request) ([]byte, int, error) {
	limit := h.opts.MaxRequestBody
	var reader io.Reader = http.MaxBytesReader(w, r.Body, limit)
	switch strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))) {
	case "", "identity":
	case "gzip":
		gz, err := gzip.NewReader(reader)
		if err != nil {
			if tooLarge(err) {
				return nil, http.StatusRequestEntityTooLarge, bodyTooLarge(limit)
			}
			return nil, http.StatusBadRequest, fmt.Errorf("reading gzip request body: %w", err)
		}
		defer gz.Close()
		reader = gz
	default:
		return nil, http.StatusUnsupportedMediaType, fmt.Errorf("content bodyEncoding %q is not supported; use gzip or none",
			r.Header.Get("Content-Encoding"))
	}
	body, err := io.ReadAll(io.LimitReader(reader, limit+1))
	if err != nil {
		if tooLarge(err) {
			return nil, http.StatusRequestEntityTooLarge, bodyTooLarge(limit)
		}
		return nil, http.StatusBadRequest, fmt.Errorf("reading request body: %w", err)
	}
	if int64(len(body)) > limit {
		return nil, http.StatusRequestEntityTooLarge, bodyTooLarge(limit)
	}
	return body, http.StatusOK, nil
}

func tooLarge(err error) bool {
	var maxErr *http.MaxBytesError
	return errors.As(err, &maxErr)
}

func bodyTooLarge(limit int64) error {
	return fmt.Errorf("request body exceeds receivers.otlp.http.maxRequestBodyMiB (%d bytes) after decompression", limit)
}

func contentTypeOf(enc bodyEncoding) string {
	if enc == encodingJSON {
		return contentJSON
	}
	return contentProtobuf
}

// fail answers with a google.rpc.Status in the request's bodyEncoding, as the
// OTLP/HTTP specification requires, and counts the refusal.
func (h *httpServer) fail(w http.ResponseWriter, enc bodyEncoding, reason string, httpStatus int, code codes.Code, message string, retryAfter time.Duration) {
	h.opts.Metrics.RequestsRefused.WithLabelValues(transportHTTP, reason).Inc()
	// A decoding error may quote the invalid bytes it met; protobuf strings
	// must be UTF-8, and a Status the sender cannot decode explains nothing.
	st := &spb.Status{Code: int32(code), Message: strings.ToValidUTF8(message, "\uFFFD")}
	var out []byte
	var err error
	if enc == encodingJSON {
		out, err = protojson.Marshal(st)
	} else {
		out, err = proto.Marshal(st)
	}
	if err != nil {
		out, enc = []byte(message), encodingJSON
	}
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((retryAfter+time.Second-1)/time.Second)))
	}
	w.Header().Set("Content-Type", contentTypeOf(enc))
	w.WriteHeader(httpStatus)
	_, _ = w.Write(out)
}

func (h *httpServer) serve() error {
	if err := h.srv.Serve(h.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving OTLP/HTTP: %w", err)
	}
	return nil
}

func (h *httpServer) shutdown(ctx context.Context) error {
	if err := h.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("stopping OTLP/HTTP: %w", err)
	}
	return nil
}
