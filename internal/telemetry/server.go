package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server serves /metrics (self-metrics), /healthz and /readyz, and what
// other packages add with Handle.
type Server struct {
	srv      *http.Server
	mux      *http.ServeMux
	listener net.Listener
}

// Listen binds endpoint (host:port) and prepares the handlers; Serve starts them.
func Listen(endpoint string, registry *prometheus.Registry, readiness *Readiness, logger *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", endpoint)
	if err != nil {
		return nil, fmt.Errorf("listening for telemetry on %s: %w", endpoint, err)
	}
	mux := Handler(registry, readiness)
	return &Server{
		listener: ln,
		mux:      mux,
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		},
	}, nil
}

// Handle adds a route; call it before Serve.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Handler routes the telemetry endpoints.
func Handler(registry *prometheus.Registry, readiness *Readiness) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{Registry: registry}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		ready, reason, warnings := readiness.Probe()
		if !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "not ready: "+reason+"\n")
		} else {
			_, _ = io.WriteString(w, "ready\n")
		}
		for _, warning := range warnings {
			_, _ = io.WriteString(w, "warning: "+warning+"\n")
		}
	})
	return mux
}

// Addr is the bound address (useful with port 0).
func (s *Server) Addr() net.Addr { return s.listener.Addr() }

// Serve blocks until Shutdown.
func (s *Server) Serve() error {
	if err := s.srv.Serve(s.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving telemetry: %w", err)
	}
	return nil
}

// Shutdown stops accepting connections and waits for in-flight scrapes.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("stopping telemetry server: %w", err)
	}
	return nil
}
