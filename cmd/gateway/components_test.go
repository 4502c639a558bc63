package main

import (
	"maps"
	"slices"
	"testing"

	"go.opentelemetry.io/collector/component"

	"github.com/deltapipeline/deltapipeline/internal/manifests"
)

// The operator checks spec.gateway.config against manifests.GatewayDistribution;
// it must list exactly what this distribution holds.
func TestOperatorKnowsTheDistributionsComponents(t *testing.T) {
	f, err := components()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		kind string
		got  []component.Type
		want []string
	}{
		{"receivers", slices.Collect(maps.Keys(f.Receivers)), manifests.GatewayDistribution.Receivers},
		{"processors", slices.Collect(maps.Keys(f.Processors)), manifests.GatewayDistribution.Processors},
		{"exporters", slices.Collect(maps.Keys(f.Exporters)), manifests.GatewayDistribution.Exporters},
		{"extensions", slices.Collect(maps.Keys(f.Extensions)), manifests.GatewayDistribution.Extensions},
	} {
		got := make([]string, 0, len(c.got))
		for _, t := range c.got {
			got = append(got, t.String())
		}
		slices.Sort(got)
		want := slices.Sorted(slices.Values(c.want))
		if !slices.Equal(got, want) {
			t.Errorf("%s: the distribution has %v, the operator lists %v", c.kind, got, want)
		}
	}
}
