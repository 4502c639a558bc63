// Package telemetrytest holds what the tests of the packages that register
// self-metrics share to read them back.
package telemetrytest

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// Exposition renders a registry in the text format /metrics serves, so a
// test can look for a metric line exactly as a scraper would see it.
func Exposition(t testing.TB, reg prometheus.Gatherer) string {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range families {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}
