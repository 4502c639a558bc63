package state

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deltapipeline/deltapipeline/internal/state/wal"
	"github.com/deltapipeline/deltapipeline/internal/telemetry"
)

type metrics struct {
	checkpointDuration    prometheus.Histogram
	checkpointBytes       prometheus.Gauge
	checkpointStreams     prometheus.Gauge
	checkpointLastSuccess prometheus.Gauge
	checkpointFailures    prometheus.Counter
	checkpointsFailing    prometheus.Gauge
	restoreFailures       prometheus.Counter
	restoredStreams       prometheus.Gauge
	skippedStreams        prometheus.Counter
	walFsync              prometheus.Histogram
	walAppendedRecords    prometheus.Counter
	walAppendedBytes      prometheus.Counter
	walReplayedRecords    prometheus.Counter
	walDamage             *prometheus.CounterVec
	walUndecodable        prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, walStats func() wal.Stats, healthy func() error) (*metrics, error) {
	m := &metrics{
		checkpointDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: telemetry.Namespace, Name: "checkpoint_duration_seconds",
			Help:    "Time to write one checkpoint, from rotating the write-ahead log to removing the segments it covers.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}),
		checkpointBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: telemetry.Namespace, Name: "checkpoint_size_bytes",
			Help: "Size of the last checkpoint written.",
		}),
		checkpointStreams: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: telemetry.Namespace, Name: "checkpoint_streams",
			Help: "Streams in the last checkpoint written.",
		}),
		checkpointLastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: telemetry.Namespace, Name: "checkpoint_last_success_timestamp_seconds",
			Help: "Unix time of the last checkpoint written successfully.",
		}),
		checkpointFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: telemetry.Namespace, Name: "checkpoint_failures_total",
			Help: "Checkpoints that could not be written; the write-ahead log keeps the data meanwhile.",
		}),
		checkpointsFailing: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: telemetry.Namespace, Name: "checkpoint_consecutive_failures",
			Help: "Checkpoints failed in a row since the last one that succeeded; 0 when the last one succeeded.",
		}),
		restoreFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: telemetry.Namespace, Name: "checkpoint_restore_failures_total",
			Help: "Checkpoints found damaged or unreadable at start; the worker started without them.",
		}),
		restoredStreams: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: telemetry.Namespace, Name: "checkpoint_restored_streams",
			Help: "Streams restored from the checkpoint at start.",
		}),
		skippedStreams: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: telemetry.Namespace, Name: "checkpoint_skipped_streams_total",
			Help: "Intact streams of the checkpoint that the converter declined at start (for example beyond a lowered stream limit).",
		}),
		walFsync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: telemetry.Namespace, Name: "wal_fsync_duration_seconds",
			Help:    "Latency of one write-ahead log fsync (one group commit).",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1},
		}),
		walAppendedRecords: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: telemetry.Namespace, Name: "wal_appended_records_total",
			Help: "Requests made durable in the write-ahead log.",
		}),
		walAppendedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: telemetry.Namespace, Name: "wal_appended_bytes_total",
			Help: "Bytes written to the write-ahead log.",
		}),
		walReplayedRecords: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: telemetry.Namespace, Name: "wal_replayed_records_total",
			Help: "Write-ahead log records replayed at start.",
		}),
		walDamage: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: telemetry.Namespace, Name: "wal_damaged_segments_total",
			Help: "Segments whose reading stopped early at start: where=tail is the torn end a crash leaves, where=inside is media damage.",
		}, []string{"where"}),
		walUndecodable: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: telemetry.Namespace, Name: "wal_undecodable_records_total",
			Help: "Write-ahead log records with a valid checksum that did not decode as OTLP metrics and were skipped.",
		}),
	}
	walBytes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: telemetry.Namespace, Name: "wal_size_bytes",
		Help: "Bytes held by write-ahead log segments on disk.",
	}, func() float64 { return float64(walStats().Bytes) })
	walWritable := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: telemetry.Namespace, Name: "wal_writable",
		Help: "1 while the write-ahead log makes requests durable; 0 before state is restored, after a write or fsync failed (requests are refused until a new segment can be started) and once the worker shuts down.",
	}, func() float64 {
		if healthy() != nil {
			return 0
		}
		return 1
	})
	walSegments := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: telemetry.Namespace, Name: "wal_segments",
		Help: "Write-ahead log segments on disk.",
	}, func() float64 { return float64(walStats().Segments) })

	for _, c := range []prometheus.Collector{
		m.checkpointDuration, m.checkpointBytes, m.checkpointStreams, m.checkpointLastSuccess,
		m.checkpointFailures, m.checkpointsFailing, m.restoreFailures, m.restoredStreams, m.skippedStreams, m.walFsync, m.walAppendedRecords,
		m.walAppendedBytes, m.walReplayedRecords, m.walDamage, m.walUndecodable, walBytes, walSegments, walWritable,
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m.walDamage.WithLabelValues("tail")
	m.walDamage.WithLabelValues("inside")
	return m, nil
}

func (m *metrics) observeSync(d time.Duration, records, bytes int) {
	m.walFsync.Observe(d.Seconds())
	m.walAppendedRecords.Add(float64(records))
	m.walAppendedBytes.Add(float64(bytes))
}

func damageLocation(d wal.Damage) string {
	if d.Tail {
		return "tail"
	}
	return "inside"
}
