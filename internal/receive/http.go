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
	// maxBody bounds one request body after decompression, in bytes.
	maxBody int64
	in      *ingest
}

func listenHTTP(opts Options, in *ingest) (*httpServer, error) {
	ln, err := net.Listen("tcp", opts.HTTPEndpoint)
	if err != nil {
		return nil, fmt.Errorf("listening for OTLP/HTTP on %s: %w", opts.HTTPEndpoint, err)
	}
	h := &httpServer{listener: ln, maxBody: opts.MaxRequestBody, in: in}
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

// requestEncoding maps Content-Type to the encoding of an OTLP body.
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

// handleMetrics decodes one POST to /v1/metrics, ingests it and encodes the
// answer in the request's encoding.
func (h *httpServer) handleMetrics(w http.ResponseWriter, r *http.Request) {
	enc, known := requestEncoding(r.Header.Get("Content-Type"))
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.refuse(w, enc, reasonMethodNotAllowed, http.StatusMethodNotAllowed, codes.Unimplemented,
			fmt.Sprintf("method %s is not allowed on %s; use POST", r.Method, metricsPath))
		return
	}
	if !known {
		h.refuse(w, encodingJSON, reasonUnsupportedMediaType, http.StatusUnsupportedMediaType, codes.InvalidArgument,
			fmt.Sprintf("content type %q is not supported; use %s or %s",
				r.Header.Get("Content-Type"), contentProtobuf, contentJSON))
		return
	}

	if !h.in.authenticate(transportHTTP, r.Header.Values("Authorization")) {
		w.Header().Set("WWW-Authenticate", "Bearer")
		writeStatus(w, enc, http.StatusUnauthorized, codes.Unauthenticated, errUnauthenticated.Error(), 0)
		return
	}

	body, status, err := h.readBody(w, r)
	if err != nil {
		reason, code := reasonMalformed, codes.InvalidArgument
		switch status {
		case http.StatusRequestEntityTooLarge:
			reason, code = reasonTooLarge, codes.ResourceExhausted
		case http.StatusUnsupportedMediaType:
			reason = reasonUnsupportedMediaType
		}
		h.refuse(w, enc, reason, status, code, err.Error())
		return
	}

	var resp pmetricotlp.ExportResponse
	if enc == encodingJSON {
		req := pmetricotlp.NewExportRequest()
		if err := req.UnmarshalJSON(body); err != nil {
			h.refuse(w, enc, reasonMalformed, http.StatusBadRequest, codes.InvalidArgument,
				(&MalformedError{Err: err}).Error())
			return
		}
		resp, err = h.in.export(r.Context(), transportHTTP, req.Metrics())
	} else {
		resp, err = h.in.exportEncoded(r.Context(), transportHTTP, body)
	}
	var malformed *MalformedError
	var refusal *UnavailableError
	switch {
	case errors.As(err, &malformed):
		writeStatus(w, enc, http.StatusBadRequest, codes.InvalidArgument, malformed.Error(), 0)
		return
	case errors.As(err, &refusal):
		writeStatus(w, enc, http.StatusServiceUnavailable, codes.Unavailable, refusal.Error(), refusal.RetryAfter)
		return
	case err != nil:
		h.refuse(w, enc, reasonInternal, http.StatusInternalServerError, codes.Internal, err.Error())
		return
	}
	var out []byte
	if enc == encodingJSON {
		out, err = resp.MarshalJSON()
	} else {
		out, err = resp.MarshalProto()
	}
	if err != nil {
		h.refuse(w, enc, reasonInternal, http.StatusInternalServerError, codes.Internal,
			fmt.Sprintf("encoding OTLP ExportMetricsServiceResponse: %v", err))
		return
	}
	w.Header().Set("Content-Type", contentTypeOf(enc))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// readBody reads the body, decompressing gzip, and enforces the size limit
// on the decompressed bytes so that a small compressed bomb is refused too.
func (h *httpServer) readBody(w http.ResponseWriter, r *http.Request) ([]byte, int, error) {
	limit := h.maxBody
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
		return nil, http.StatusUnsupportedMediaType, fmt.Errorf("content encoding %q is not supported; use gzip or none",
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

// refuse counts a request the transport could not ingest and answers why.
func (h *httpServer) refuse(w http.ResponseWriter, enc bodyEncoding, reason string, httpStatus int, code codes.Code, message string) {
	h.in.refused(transportHTTP, reason)
	writeStatus(w, enc, httpStatus, code, message, 0)
}

// writeStatus answers with a google.rpc.Status in the request's encoding,
// as the OTLP/HTTP specification requires, and with Retry-After when the
// sender should come back later.
func writeStatus(w http.ResponseWriter, enc bodyEncoding, httpStatus int, code codes.Code, message string, retryAfter time.Duration) {
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
