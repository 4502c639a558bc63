package monitoring

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deltapipeline/deltapipeline/internal/convert"
	"github.com/deltapipeline/deltapipeline/internal/handoff"
	"github.com/deltapipeline/deltapipeline/internal/ring"
)

const handoffPrefix = "deltapipeline_worker_handoff_"

// registeredHandoffMetrics gathers what a worker's hand-over registers:
// metric family names and, per family, the values of its reason label.
func registeredHandoffMetrics(t *testing.T) map[string][]string {
	t.Helper()
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("peer-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keyer, err := ring.NewKeyer(ring.KeyStreamID, nil)
	if err != nil {
		t.Fatal(err)
	}
	engine, err := convert.NewEngine(convert.Config{})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	h, err := handoff.New(handoff.Options{Member: "claude-worker-0", Keyer: keyer, PeerEndpoint: "127.0.0.1:0", TokenFile: token,
		Engine: func() *convert.Engine { return engine }, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, f := range families {
		var reasons []string
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" {
					reasons = append(reasons, l.GetValue())
				}
			}
		}
		out[f.GetName()] = reasons
	}
	return out
}

// The dashboards and rules name the hand-over's metrics by string; a rename
// in internal/handoff would leave them empty without this.
func TestHandoffMetricNamesAreTheOnesTheWorkerRegisters(t *testing.T) {
	registered := registeredHandoffMetrics(t)
	listed := 0
	for _, n := range MetricNames {
		if !strings.HasPrefix(n, handoffPrefix) {
			continue
		}
		listed++
		if _, ok := registered[n]; !ok {
			t.Errorf("%s is in MetricNames but internal/handoff registers no such metric", n)
		}
	}
	if listed == 0 {
		t.Fatal("MetricNames lists no hand-over metric")
	}
	if reasons := registered[HandoffPeerRefused]; !slices.Contains(reasons, PeerRefusedUnauthenticated) {
		t.Errorf("%s has reasons %v, without %q which DeltaPipelineWorkerPeerRefused matches", HandoffPeerRefused, reasons, PeerRefusedUnauthenticated)
	}
}
