package monitoring

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/bargauge"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// A Dashboard is described here as data, so that the same description
// renders the Grafana JSON and drives the test that runs every query
// against a real Prometheus.
type Dashboard struct {
	UID, Title, Description string
	// File is the JSON file name in the chart's dashboards directory.
	File      string
	Tags      []string
	Variables []Variable
	Rows      []Row
}

// Variable is a Grafana query variable over one label of one metric; it is
// multi-valued with "All" meaning any value, including an absent label.
type Variable struct {
	Name, Label string
	Metric      string
	LabelName   string
}

// Row groups panels under a title.
type Row struct {
	Title  string
	Panels []Panel
}

// PanelKind is how a panel draws its queries.
type PanelKind int

const (
	// Stat shows one number: the instant value at the end of the range.
	Stat PanelKind = iota
	// BarGauge shows one bar per series of an instant query.
	BarGauge
	// TimeSeries draws range queries over the dashboard range.
	TimeSeries
)

// Panel is one panel and its queries.
type Panel struct {
	Title, Description string
	Kind               PanelKind
	Unit               string
	// Width is in Grafana's 24-column grid; Stat panels default to 4, the
	// others to 12.
	Width   uint32
	Queries []Query
}

// Query is one PromQL target of a panel.
type Query struct {
	Expr   string
	Legend string
	// Total, when set, says that the query sums a Claude Code counter over
	// the dashboard range: the load generator's ledger must give the same
	// figure (see the dashboard query test).
	Total *LedgerTotal
}

// LedgerTotal names what a total panel adds up, in terms of the series the
// load generator recorded: every series of Metric whose labels equal Match,
// summed per value of the By labels.
type LedgerTotal struct {
	Metric string
	Match  map[string]string
	By     []string
}

// datasourceVariable is the name of the dashboards' data source variable.
const datasourceVariable = "datasource"

// Build renders d with the Grafana Foundation SDK. It builds the classic
// dashboard JSON model, which the Grafana sidecar and every Grafana release
// import, rather than the v2 schema the SDK prefers, which needs Grafana 12's
// new dashboard API.
func (d Dashboard) Build() (dashboard.Dashboard, error) { //nolint:staticcheck // SA1019: the classic model on purpose, see above.
	ds := common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${" + datasourceVariable + "}")}
	b := dashboard.NewDashboardBuilder(d.Title) //nolint:staticcheck // SA1019: the classic model on purpose, see Build.
	b = b.Uid(d.UID).
		Description(d.Description).
		Tags(d.Tags).
		Editable().
		Time("now-6h", "now").
		Refresh("1m").
		Timezone(common.TimeZoneBrowser).
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		WithVariable(dashboard.NewDatasourceVariableBuilder(datasourceVariable).
			Label("Data source").
			Type("prometheus"))
	for _, v := range d.Variables {
		query := fmt.Sprintf("label_values(%s, %s)", v.Metric, v.LabelName)
		b = b.WithVariable(dashboard.NewQueryVariableBuilder(v.Name).
			Label(v.Label).
			Datasource(ds).
			Query(dashboard.StringOrMap{String: cog.ToPtr(query)}).
			Definition(query).
			Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
			Sort(dashboard.VariableSortAlphabeticalAsc).
			Multi(true).
			IncludeAll(true).
			AllValue(".*"))
	}
	var id uint32
	for _, row := range d.Rows {
		b = b.WithRow(dashboard.NewRowBuilder(row.Title))
		for _, p := range row.Panels {
			id++
			b = b.WithPanel(p.builder(id, ds))
		}
	}
	return b.Build()
}

// JSON renders d as the indented JSON Grafana imports.
func (d Dashboard) JSON() ([]byte, error) {
	built, err := d.Build()
	if err != nil {
		return nil, fmt.Errorf("building dashboard %q: %w", d.Title, err)
	}
	out, err := json.MarshalIndent(built, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding dashboard %q: %w", d.Title, err)
	}
	return append(out, '\n'), nil
}

func (p Panel) width() uint32 {
	switch {
	case p.Width > 0:
		return p.Width
	case p.Kind == Stat:
		return 4
	default:
		return 12
	}
}

func (p Panel) targets(ds common.DataSourceRef) []cog.Builder[variants.Dataquery] {
	out := make([]cog.Builder[variants.Dataquery], 0, len(p.Queries))
	for i, q := range p.Queries {
		t := prometheus.NewDataqueryBuilder().
			Datasource(ds).
			RefId(string(rune('A' + i))).
			Expr(q.Expr).
			LegendFormat(q.Legend)
		if p.Kind == TimeSeries {
			t = t.Range()
		} else {
			t = t.Instant()
		}
		out = append(out, t)
	}
	return out
}

func (p Panel) builder(id uint32, ds common.DataSourceRef) cog.Builder[dashboard.Panel] {
	height := uint32(8)
	if p.Kind == Stat {
		height = 4
	}
	switch p.Kind {
	case Stat:
		return stat.NewPanelBuilder().Id(id).Title(p.Title).Description(p.Description).
			Datasource(ds).Targets(p.targets(ds)).Unit(p.Unit).Height(height).Span(p.width()).
			GraphMode(common.BigValueGraphModeNone).ColorMode(common.BigValueColorModeValue).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}))
	case BarGauge:
		return bargauge.NewPanelBuilder().Id(id).Title(p.Title).Description(p.Description).
			Datasource(ds).Targets(p.targets(ds)).Unit(p.Unit).Height(height).Span(p.width()).
			Orientation(common.VizOrientationHorizontal).DisplayMode(common.BarGaugeDisplayModeGradient).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}))
	default:
		return timeseries.NewPanelBuilder().Id(id).Title(p.Title).Description(p.Description).
			Datasource(ds).Targets(p.targets(ds)).Unit(p.Unit).Height(height).Span(p.width()).
			FillOpacity(10).
			Legend(common.NewVizLegendOptionsBuilder().DisplayMode(common.LegendDisplayModeList).
				Placement(common.LegendPlacementBottom).ShowLegend(true))
	}
}

// Panels returns every panel of d in order.
func (d Dashboard) Panels() []Panel {
	var out []Panel
	for _, r := range d.Rows {
		out = append(out, r.Panels...)
	}
	return out
}

// Dashboards are the dashboards the chart ships.
func Dashboards() []Dashboard {
	return []Dashboard{ClaudeCodeUsage(), PipelineHealth()}
}

// selector renders metric{label=~"$var",...} for the given variables.
func selector(metric string, matchers ...string) string {
	if len(matchers) == 0 {
		return metric
	}
	return metric + "{" + strings.Join(matchers, ", ") + "}"
}

// totalInRange is how much a counter grew over the dashboard range, exactly
// (see growth). increase() would extrapolate to the range edges and miss
// the first sample of every series that starts inside the range, which is
// most Claude Code series (one per session), so totals built on it would be
// off by the first interval of every session.
func totalInRange(sel string) string { return growth(sel, "$__range") }

// StreamLookback is how far before a window growth looks for a series'
// previous value. The worker sends a stream only when it changed and
// forgets it after conversion.maxStale (10 minutes by default) without a
// point, so a live stream's samples are never further apart than that: a
// series with no sample in the lookback starts from zero in the window.
const StreamLookback = "15m"

// growth is how much each series of sel grew in the window before the
// evaluation time: its last value in the window minus its last value before
// the window, or its last value when it has none before (born in the window)
// or the difference is negative (it restarted from zero, as a stream the
// worker had forgotten does). rate() and increase() cannot see a series'
// first sample, and a stream sent only when it changed often has one.
func growth(sel, window string) string {
	last := fmt.Sprintf("last_over_time(%s[%s])", sel, window)
	before := fmt.Sprintf("last_over_time(%s[%s] offset %s)", sel, StreamLookback, window)
	return fmt.Sprintf("((%[1]s - %[2]s) >= 0 or %[1]s)", last, before)
}
