// Package promexport owns the Prometheus pull exporter: an HTTP endpoint
// serving /metrics with the last cumulative value of every converted series,
// named exactly as remote write names them. A series that receives no point
// for conversion.maxStale disappears, as its stream does in the converter.
// It counts the series it serves (scrape_series) and, through the shared
// export metrics, the points it cannot name for Prometheus.
package promexport

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"google.golang.org/protobuf/proto"

	"github.com/deltapipeline/deltapipeline/internal/export"
	"github.com/deltapipeline/deltapipeline/internal/export/promseries"
	"github.com/deltapipeline/deltapipeline/internal/telemetry"
)

// Name is the exporter label of this exporter's self-metrics.
const Name = "prometheus"

// Options build an Exporter.
type Options struct {
	Endpoint string
	// MaxStale is how long a series is served without a new point.
	MaxStale time.Duration
	// Metrics counts dropped points with the other exporters.
	Metrics *export.Metrics
	// Registerer takes this exporter's own metric, scrape_series.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Now is the clock for expiry; time.Now when nil.
	Now func() time.Time
}

// Exporter keeps the latest point of each series and serves them.
type Exporter struct {
	opts       Options
	translator *promseries.Translator
	listener   net.Listener
	srv        *http.Server
	served     prometheus.Gauge

	mu     sync.Mutex
	series map[string]*entry
}

type entry struct {
	point   promseries.Point
	updated time.Time
}

// Listen binds the scrape endpoint; Serve starts answering.
func Listen(opts Options) (*Exporter, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	served := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: telemetry.Namespace, Name: "scrape_series",
		Help: "Series currently served by the Prometheus pull exporter.",
	})
	if err := opts.Registerer.Register(served); err != nil {
		return nil, fmt.Errorf("registering the Prometheus exporter's metrics: %w", err)
	}
	ln, err := net.Listen("tcp", opts.Endpoint)
	if err != nil {
		opts.Registerer.Unregister(served)
		return nil, fmt.Errorf("listening for Prometheus scrapes on %s: %w", opts.Endpoint, err)
	}
	e := &Exporter{
		opts:       opts,
		translator: promseries.NewTranslator(nil),
		listener:   ln,
		served:     served,
		series:     map[string]*entry{},
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", e)
	e.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
	}
	return e, nil
}

// Name implements export.Exporter.
func (e *Exporter) Name() string { return Name }

// Addr is the bound address.
func (e *Exporter) Addr() net.Addr { return e.listener.Addr() }

// Serve answers scrapes until Shutdown.
func (e *Exporter) Serve() error {
	if err := e.srv.Serve(e.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving Prometheus scrapes: %w", err)
	}
	return nil
}

// Export records the latest value of each series in md.
func (e *Exporter) Export(_ context.Context, md pmetric.Metrics) error {
	now := e.opts.Now()
	e.mu.Lock()
	dropped := e.translator.Translate(md, func(p *promseries.Point) {
		key := seriesKey(p)
		if p.Stale {
			delete(e.series, key)
			return
		}
		if old, ok := e.series[key]; ok && old.point.TimestampMs > p.TimestampMs {
			return
		}
		e.series[key] = &entry{point: clonePoint(p), updated: now}
	})
	e.served.Set(float64(len(e.series)))
	e.mu.Unlock()
	for reason, n := range dropped {
		e.opts.Metrics.Dropped(Name, reason, n)
	}
	return nil
}

func seriesKey(p *promseries.Point) string {
	var b strings.Builder
	b.WriteString(p.Family)
	for _, l := range p.Labels {
		b.WriteByte(0xff)
		b.WriteString(l.Name)
		b.WriteByte(0xfe)
		b.WriteString(l.Value)
	}
	return b.String()
}

func clonePoint(p *promseries.Point) promseries.Point {
	c := *p
	c.Labels = slices.Clone(p.Labels)
	c.Buckets = slices.Clone(p.Buckets)
	c.Quantiles = slices.Clone(p.Quantiles)
	c.Native.Positive.Counts = slices.Clone(p.Native.Positive.Counts)
	c.Native.Negative.Counts = slices.Clone(p.Native.Negative.Counts)
	return c
}

// ServeHTTP renders every live series in the format the scraper asked for.
func (e *Exporter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	families := e.gather()
	format := expfmt.Negotiate(r.Header)
	w.Header().Set("Content-Type", string(format))
	enc := expfmt.NewEncoder(w, format)
	for _, mf := range families {
		if err := enc.Encode(mf); err != nil {
			e.opts.Logger.Warn("writing scrape response", "error", err)
			return
		}
	}
	if closer, ok := enc.(expfmt.Closer); ok {
		_ = closer.Close()
	}
}

// gather expires stale series and builds the families, sorted by name and
// then by labels so that scrapes are stable.
func (e *Exporter) gather() []*dto.MetricFamily {
	cutoff := e.opts.Now().Add(-e.opts.MaxStale)
	e.mu.Lock()
	byFamily := map[string]*dto.MetricFamily{}
	for key, s := range e.series {
		if s.updated.Before(cutoff) {
			delete(e.series, key)
			continue
		}
		p := &s.point
		mf, ok := byFamily[p.Family]
		if !ok {
			mf = &dto.MetricFamily{Name: proto.String(p.Family), Type: metricType(p.Kind).Enum()}
			if p.Help != "" {
				mf.Help = proto.String(p.Help)
			}
			byFamily[p.Family] = mf
		}
		if mf.GetType() != metricType(p.Kind) {
			continue // two OTLP metrics of different types share this name; the first one seen is served
		}
		mf.Metric = append(mf.Metric, toMetric(p))
	}
	e.served.Set(float64(len(e.series)))
	e.mu.Unlock()

	out := make([]*dto.MetricFamily, 0, len(byFamily))
	for _, mf := range byFamily {
		slices.SortFunc(mf.Metric, func(a, b *dto.Metric) int { return compareLabels(a.Label, b.Label) })
		out = append(out, mf)
	}
	slices.SortFunc(out, func(a, b *dto.MetricFamily) int { return cmp.Compare(a.GetName(), b.GetName()) })
	return out
}

func compareLabels(a, b []*dto.LabelPair) int {
	for i := range min(len(a), len(b)) {
		if c := cmp.Compare(a[i].GetName(), b[i].GetName()); c != 0 {
			return c
		}
		if c := cmp.Compare(a[i].GetValue(), b[i].GetValue()); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a), len(b))
}

func metricType(k promseries.Kind) dto.MetricType {
	switch k {
	case promseries.KindCounter:
		return dto.MetricType_COUNTER
	case promseries.KindGauge:
		return dto.MetricType_GAUGE
	case promseries.KindSummary:
		return dto.MetricType_SUMMARY
	default:
		return dto.MetricType_HISTOGRAM
	}
}

func toMetric(p *promseries.Point) *dto.Metric {
	m := &dto.Metric{Label: make([]*dto.LabelPair, len(p.Labels))}
	for i, l := range p.Labels {
		m.Label[i] = &dto.LabelPair{Name: proto.String(l.Name), Value: proto.String(l.Value)}
	}
	switch p.Kind {
	case promseries.KindCounter:
		m.Counter = &dto.Counter{Value: proto.Float64(p.Value)}
	case promseries.KindGauge:
		m.Gauge = &dto.Gauge{Value: proto.Float64(p.Value)}
	case promseries.KindSummary:
		s := &dto.Summary{SampleCount: proto.Uint64(p.Count), SampleSum: proto.Float64(p.Sum)}
		for _, q := range p.Quantiles {
			s.Quantile = append(s.Quantile, &dto.Quantile{Quantile: proto.Float64(q.Quantile), Value: proto.Float64(q.Value)})
		}
		m.Summary = s
	case promseries.KindHistogram:
		h := &dto.Histogram{SampleCount: proto.Uint64(p.Count), SampleSum: proto.Float64(p.Sum)}
		for _, b := range p.Buckets {
			h.Bucket = append(h.Bucket, &dto.Bucket{UpperBound: proto.Float64(b.UpperBound), CumulativeCount: proto.Uint64(b.Count)})
		}
		m.Histogram = h
	case promseries.KindNativeHistogram:
		// Native histograms reach Prometheus only in the protobuf scrape
		// format; the text format shows their count and sum.
		n := p.Native
		h := &dto.Histogram{
			SampleCount:   proto.Uint64(p.Count),
			SampleSum:     proto.Float64(p.Sum),
			Schema:        proto.Int32(n.Schema),
			ZeroThreshold: proto.Float64(n.ZeroThreshold),
			ZeroCount:     proto.Uint64(n.ZeroCount),
		}
		h.PositiveSpan, h.PositiveDelta = spans(n.Positive)
		h.NegativeSpan, h.NegativeDelta = spans(n.Negative)
		m.Histogram = h
	}
	return m
}

func spans(b promseries.NativeBuckets) ([]*dto.BucketSpan, []int64) {
	if len(b.Counts) == 0 {
		return nil, nil
	}
	deltas := make([]int64, len(b.Counts))
	var prev int64
	for i, c := range b.Counts {
		deltas[i] = int64(c) - prev
		prev = int64(c)
	}
	return []*dto.BucketSpan{{Offset: proto.Int32(b.Offset), Length: proto.Uint32(uint32(len(b.Counts)))}}, deltas
}

// Shutdown stops serving scrapes.
func (e *Exporter) Shutdown(ctx context.Context) error {
	if err := e.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("stopping Prometheus scrape endpoint: %w", err)
	}
	return nil
}
