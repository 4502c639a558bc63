package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/exp/api/remote"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/deltapipeline/deltapipeline/cmd/loadgen/totals"
)

// Sample is one stored remote-write sample and the worker that sent it.
type Sample struct {
	TimestampMs int64
	Value       float64
	Worker      int
}

func (s Sample) String() string {
	return fmt.Sprintf("%v at %s from worker %d", s.Value, time.UnixMilli(s.TimestampMs).UTC().Format("15:04:05.000"), s.Worker)
}

// Receiver is a Prometheus remote write 1.0 endpoint that keeps every
// sample it is sent. Each worker writes to its own path, /worker/<i>/..., so
// every sample is tied to the worker that produced it.
type Receiver struct {
	listener net.Listener
	server   *http.Server
	workers  int

	mu       sync.Mutex
	series   map[string][]Sample
	requests []int64 // per worker
	samples  []int64 // per worker
	refused  int64
	lastErr  error
}

// remoteWritePath is where worker i writes.
func remoteWritePath(worker int) string {
	return "/worker/" + strconv.Itoa(worker) + "/api/v1/write"
}

// StartReceiver listens on a free loopback port for workers writers.
func StartReceiver(workers int) (*Receiver, error) {
	return StartReceiverOn("127.0.0.1:0", workers)
}

// StartReceiverOn listens on address for workers writers; the cluster
// suite's receiver pod listens on all interfaces.
func StartReceiverOn(address string, workers int) (*Receiver, error) {
	listener, err := net.Listen("tcp", address)
	if err != nil {
		return nil, fmt.Errorf("starting the remote write receiver: %w", err)
	}
	r := &Receiver{
		listener: listener,
		workers:  workers,
		series:   make(map[string][]Sample),
		requests: make([]int64, workers),
		samples:  make([]int64, workers),
	}
	mux := http.NewServeMux()
	for i := range workers {
		mux.Handle(remoteWritePath(i), remote.NewWriteHandler(workerStore{r, i}, remote.MessageTypes{remote.WriteV1MessageType}))
	}
	r.server = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.server.Serve(listener) }()
	return r, nil
}

// WritePath is the URL path worker i writes to.
func WritePath(worker int) string { return remoteWritePath(worker) }

// Endpoint is the remote write URL for worker i.
func (r *Receiver) Endpoint(worker int) string {
	return "http://" + r.listener.Addr().String() + remoteWritePath(worker)
}

// Close stops the server.
func (r *Receiver) Close(ctx context.Context) error {
	if err := r.server.Shutdown(ctx); err != nil {
		return fmt.Errorf("stopping the remote write receiver: %w", err)
	}
	return nil
}

// ReceiverStats summarises what arrived.
type ReceiverStats struct {
	Series           int
	Samples          int64
	RequestsByWorker []int64
	SamplesByWorker  []int64
	// Refused counts requests that could not be decoded; LastError says why.
	Refused   int64
	LastError error
}

// Stats returns the counters so far.
func (r *Receiver) Stats() ReceiverStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := ReceiverStats{
		Series:           len(r.series),
		RequestsByWorker: append([]int64(nil), r.requests...),
		SamplesByWorker:  append([]int64(nil), r.samples...),
		Refused:          r.refused,
		LastError:        r.lastErr,
	}
	for _, n := range r.samples {
		s.Samples += n
	}
	return s
}

// Series returns a copy of every series' samples in arrival order.
func (r *Receiver) Series() map[string][]Sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string][]Sample, len(r.series))
	for k, v := range r.series {
		out[k] = append([]Sample(nil), v...)
	}
	return out
}

// LastValues returns each series' latest value, by timestamp.
func (r *Receiver) LastValues() map[string]float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]float64, len(r.series))
	for k, samples := range r.series {
		last := samples[0]
		for _, s := range samples[1:] {
			if s.TimestampMs >= last.TimestampMs {
				last = s
			}
		}
		out[k] = last.Value
	}
	return out
}

// workerStore is the remote write storage of one worker's path.
type workerStore struct {
	r      *Receiver
	worker int
}

func (s workerStore) Store(req *http.Request, _ remote.WriteMessageType) (*remote.WriteResponse, error) {
	resp := remote.NewWriteResponse()
	body, err := io.ReadAll(req.Body)
	if err == nil {
		var series []decodedSeries
		if series, err = decodeWriteRequest(body); err == nil {
			s.r.store(s.worker, series)
			return resp, nil
		}
	}
	s.r.mu.Lock()
	s.r.refused++
	s.r.lastErr = fmt.Errorf("worker %d: %w", s.worker, err)
	s.r.mu.Unlock()
	resp.SetStatusCode(http.StatusBadRequest)
	return resp, fmt.Errorf("decoding the remote write request: %w", err)
}

func (r *Receiver) store(worker int, series []decodedSeries) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests[worker]++
	for _, ts := range series {
		for _, sample := range ts.samples {
			r.series[ts.key] = append(r.series[ts.key], Sample{TimestampMs: sample.timestampMs, Value: sample.value, Worker: worker})
			r.samples[worker]++
		}
	}
}

type decodedSample struct {
	value       float64
	timestampMs int64
}

type decodedSeries struct {
	key     string
	samples []decodedSample
}

// decodeWriteRequest reads a prometheus.WriteRequest (remote write 1.0):
// timeseries = 1 { labels = 1 { name = 1, value = 2 }, samples = 2 { value = 1 (double), timestamp = 2 (int64) } }.
// It is written against the protocol's field numbers rather than the
// worker's own encoder, so the two cannot share a mistake.
func decodeWriteRequest(b []byte) ([]decodedSeries, error) {
	var out []decodedSeries
	err := forEachField(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num != 1 {
			return nil // metadata and anything newer
		}
		if typ != protowire.BytesType {
			return fmt.Errorf("timeseries field has wire type %d", typ)
		}
		ts, err := decodeTimeSeries(v)
		if err != nil {
			return fmt.Errorf("timeseries %d: %w", len(out), err)
		}
		out = append(out, ts)
		return nil
	})
	return out, err
}

func decodeTimeSeries(b []byte) (decodedSeries, error) {
	var (
		ts     decodedSeries
		name   string
		labels = map[string]string{}
	)
	err := forEachField(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		switch num {
		case 1:
			var ln, lv string
			if err := forEachField(v, func(n protowire.Number, _ protowire.Type, s []byte) error {
				switch n {
				case 1:
					ln = string(s)
				case 2:
					lv = string(s)
				}
				return nil
			}); err != nil {
				return fmt.Errorf("label: %w", err)
			}
			if ln == "__name__" {
				name = lv
			} else if _, dup := labels[ln]; dup {
				return fmt.Errorf("label %q repeated", ln)
			} else {
				labels[ln] = lv
			}
		case 2:
			var sample decodedSample
			if err := forEachField(v, func(n protowire.Number, t protowire.Type, s []byte) error {
				switch {
				case n == 1 && t == protowire.Fixed64Type:
					u, _ := protowire.ConsumeFixed64(s)
					sample.value = math.Float64frombits(u)
				case n == 2 && t == protowire.VarintType:
					u, _ := protowire.ConsumeVarint(s)
					sample.timestampMs = int64(u)
				}
				return nil
			}); err != nil {
				return fmt.Errorf("sample: %w", err)
			}
			ts.samples = append(ts.samples, sample)
		case 4:
			return errors.New("native histogram samples are not expected from this pipeline")
		}
		return nil
	})
	if err != nil {
		return decodedSeries{}, err
	}
	if name == "" {
		return decodedSeries{}, errors.New("series without a __name__ label")
	}
	ts.key = totals.SeriesKey(name, labels)
	return ts, nil
}

// forEachField calls fn with every field of a protobuf message; v is the
// payload of length-delimited fields and the raw encoding otherwise.
func forEachField(b []byte, fn func(protowire.Number, protowire.Type, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("bad tag: %w", protowire.ParseError(n))
		}
		b = b[n:]
		var v []byte
		switch typ {
		case protowire.BytesType:
			payload, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return fmt.Errorf("field %d: %w", num, protowire.ParseError(m))
			}
			v, n = payload, m
		default:
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return fmt.Errorf("field %d: %w", num, protowire.ParseError(m))
			}
			v, n = b[:m], m
		}
		if err := fn(num, typ, v); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}
