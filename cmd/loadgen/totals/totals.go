// Package totals owns the load generator's record of what it sent: the exact
// value every Prometheus series must reach once the pipeline has converted
// the deltas, and the JSON file that carries that record to whoever checks
// the backend (the end-to-end suite, the demo, a person with jq).
package totals

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
)

// Totals is what a load generator run sent and had acknowledged.
type Totals struct {
	// Series maps a series key (see SeriesKey) to the value the backend must
	// show for it: a counter's sum of deltas, a histogram's cumulative
	// bucket count (name_bucket{le=...}), count (name_count) or sum
	// (name_sum).
	Series map[string]float64 `json:"series"`
	// Points counts data points acknowledged by the receiving end.
	Points int64 `json:"points"`
	// Exports counts acknowledged export requests.
	Exports int64 `json:"exports"`
	// FailedExports counts export requests that failed for good; their
	// points are not in Series.
	FailedExports int64 `json:"failedExports"`
	// FailedPoints counts the data points of FailedExports.
	FailedPoints int64 `json:"failedPoints"`
	// Streams counts distinct OTLP streams (one per counter series, one per
	// histogram, whatever its bucket count).
	Streams int `json:"streams"`
	// Sessions, SharedSessions, Writers and Rounds describe the run.
	Sessions       int `json:"sessions"`
	SharedSessions int `json:"sharedSessions"`
	Writers        int `json:"writers"`
	Rounds         int `json:"rounds"`
	// SharedSessionIDs are the session.id values written by two processes
	// at once; their series carry both writers' deltas.
	SharedSessionIDs []string `json:"sharedSessionIDs,omitempty"`
}

// Merge adds o to t: series present in both are summed (the same streams
// written again continue from their totals), counters are added; Streams
// assumes the runs wrote distinct streams, as runs with different seeds do.
func (t Totals) Merge(o Totals) Totals {
	out := t
	out.Series = make(map[string]float64, len(t.Series)+len(o.Series))
	maps.Copy(out.Series, t.Series)
	for k, v := range o.Series {
		out.Series[k] += v
	}
	out.Points += o.Points
	out.Exports += o.Exports
	out.FailedExports += o.FailedExports
	out.FailedPoints += o.FailedPoints
	out.Streams += o.Streams
	out.Sessions += o.Sessions
	out.SharedSessions += o.SharedSessions
	out.Writers += o.Writers
	out.Rounds = max(t.Rounds, o.Rounds)
	out.SharedSessionIDs = append(slices.Clone(t.SharedSessionIDs), o.SharedSessionIDs...)
	return out
}

// SeriesKey renders a series the way Prometheus prints it:
// name{a="1",b="2"} with labels sorted by name and values escaped.
func SeriesKey(name string, labels map[string]string) string {
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('{')
	for i, k := range slices.Sorted(maps.Keys(labels)) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k)
		b.WriteString(`="`)
		b.WriteString(escapeLabelValue(labels[k]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// MetricName returns the metric name part of a series key.
func MetricName(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		return key[:i]
	}
	return key
}

func escapeLabelValue(v string) string {
	if !strings.ContainsAny(v, "\\\"\n") {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return r.Replace(v)
}

// ByMetric sums the series of each metric name; handy for a summary table.
// Histogram bucket series are left out because their sum means nothing.
func (t Totals) ByMetric() map[string]float64 {
	out := make(map[string]float64)
	for key, v := range t.Series {
		name := MetricName(key)
		if strings.HasSuffix(name, "_bucket") {
			continue
		}
		out[name] += v
	}
	return out
}

// Write stores t as indented JSON at path.
func Write(path string, t Totals) error {
	data, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding totals: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing totals: %w", err)
	}
	return nil
}

// Read loads totals written by Write.
func Read(path string) (Totals, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Totals{}, fmt.Errorf("reading totals: %w", err)
	}
	var t Totals
	if err := json.Unmarshal(data, &t); err != nil {
		return Totals{}, fmt.Errorf("decoding totals %s: %w", path, err)
	}
	if t.Series == nil {
		return Totals{}, fmt.Errorf("decoding totals %s: no \"series\" object", path)
	}
	return t, nil
}
