// Command receiver is the remote write receiver of the end-to-end suite
// (test/e2e/harness) as a program, for the cluster suite to run as a pod
// where no Prometheus image is at hand: it keeps every sample written to
// /worker/0/api/v1/write and serves them all as JSON at GET /samples, and
// its counters at GET /stats.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/deltapipeline/deltapipeline/test/e2e/harness"
)

func main() {
	write := flag.String("listen", ":9090", "address of the remote write endpoint ("+harness.WritePath(0)+")")
	read := flag.String("listen-read", ":9091", "address serving GET /samples and GET /stats")
	flag.Parse()
	if err := run(*write, *read); err != nil {
		fmt.Fprintln(os.Stderr, "receiver:", err)
		os.Exit(1)
	}
}

func run(writeAddress, readAddress string) error {
	receiver, err := harness.StartReceiverOn(writeAddress, 1)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /samples", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(receiver.Series())
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		stats := receiver.Stats()
		lastError := ""
		if stats.LastError != nil {
			lastError = stats.LastError.Error()
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"series": stats.Series, "samples": stats.Samples, "refused": stats.Refused, "lastError": lastError})
	})
	server := &http.Server{Addr: readAddress, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errs := make(chan error, 1)
	go func() { errs <- server.ListenAndServe() }()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	select {
	case err := <-errs:
		return fmt.Errorf("serving the samples: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return errors.Join(server.Shutdown(shutdown), receiver.Close(shutdown))
}
