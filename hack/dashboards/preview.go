package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/deltapipeline/deltapipeline/internal/monitoring"
)

// recordedQuery is one panel query's result as test/dashboards records it.
type recordedQuery struct {
	Panel  string             `json:"panel"`
	Legend string             `json:"legend"`
	Matrix model.Matrix       `json:"matrix,omitempty"`
	Totals map[string]float64 `json:"totals,omitempty"`
}

// Preview picture layout: tiles of a Grafana-like grid, small enough that
// the committed PNGs stay small.
const (
	previewColumns = 4
	tileWidth      = 340
	tileHeight     = 210
	maxSeries      = 6
	maxBars        = 6
)

// writePreviews renders one PNG per dashboard from the recorded results.
func writePreviews(recordPath, dir string) error {
	raw, err := os.ReadFile(recordPath)
	if err != nil {
		return fmt.Errorf("reading the recorded panel results: %w", err)
	}
	var record map[string][]recordedQuery
	if err := json.Unmarshal(raw, &record); err != nil {
		return fmt.Errorf("decoding %s: %w", recordPath, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	for _, d := range monitoring.Dashboards() {
		results := record[d.UID]
		if len(results) == 0 {
			return fmt.Errorf("%s holds no results of dashboard %q: record them with `make dashboards-test DASHBOARD_RECORD=...`", recordPath, d.Title)
		}
		var plots []*plot.Plot
		for _, p := range d.Panels() {
			var queries []recordedQuery
			for _, r := range results {
				if r.Panel == p.Title {
					queries = append(queries, r)
				}
			}
			pl, err := panelPlot(p, queries)
			if err != nil {
				return fmt.Errorf("dashboard %q, panel %q: %w", d.Title, p.Title, err)
			}
			plots = append(plots, pl)
		}
		path := filepath.Join(dir, strings.TrimSuffix(d.File, ".json")+".png")
		if err := renderGrid(d.Title, plots, path); err != nil {
			return err
		}
	}
	return nil
}

func panelPlot(p monitoring.Panel, queries []recordedQuery) (*plot.Plot, error) {
	pl := plot.New()
	pl.Title.Text = p.Title
	pl.Title.TextStyle.Font.Size = vg.Points(10)
	pl.Legend.TextStyle.Font.Size = vg.Points(6)
	pl.Legend.Top = true
	for _, a := range []*plot.Axis{&pl.X, &pl.Y} {
		a.Tick.Label.Font.Size = vg.Points(6)
	}
	if len(queries) == 0 {
		// As Grafana shows a panel whose queries returned nothing.
		pl.Title.Text = p.Title + "\n\nNo data"
		pl.HideAxes()
		return pl, nil
	}
	switch p.Kind {
	case monitoring.Stat:
		v := 0.0
		for _, q := range queries {
			for _, x := range q.Totals {
				v += x
			}
		}
		pl.Title.Text = p.Title + "\n\n" + formatValue(v, p.Unit)
		pl.Title.TextStyle.Font.Size = vg.Points(14)
		pl.HideAxes()
		return pl, nil
	case monitoring.BarGauge:
		type bar struct {
			label string
			value float64
		}
		var bars []bar
		for _, q := range queries {
			for key, v := range q.Totals {
				bars = append(bars, bar{label: legendFromKey(q.Legend, key), value: v})
			}
		}
		slices.SortFunc(bars, func(a, b bar) int { return cmp.Compare(b.value, a.value) })
		bars = bars[:min(len(bars), maxBars)]
		slices.Reverse(bars)
		values := make(plotter.Values, len(bars))
		labels := make([]string, len(bars))
		for i, b := range bars {
			values[i], labels[i] = b.value, shorten(b.label)
		}
		chart, err := plotter.NewBarChart(values, vg.Points(8))
		if err != nil {
			return nil, err
		}
		chart.Horizontal = true
		chart.Color = color.RGBA{R: 0x3d, G: 0x71, B: 0xd9, A: 0xff}
		chart.LineStyle.Width = 0
		pl.Add(chart)
		pl.NominalY(labels...)
		pl.X.Min = 0
		return pl, nil
	default:
		var lines int
		for qi, q := range queries {
			series := slices.Clone(q.Matrix)
			slices.SortFunc(series, func(a, b *model.SampleStream) int { return cmp.Compare(a.Metric.String(), b.Metric.String()) })
			for _, s := range series {
				if lines == maxSeries {
					break
				}
				xys := make(plotter.XYs, 0, len(s.Values))
				for _, v := range s.Values {
					if math.IsNaN(float64(v.Value)) || math.IsInf(float64(v.Value), 0) {
						continue
					}
					xys = append(xys, plotter.XY{X: float64(v.Timestamp-series[0].Values[0].Timestamp) / 1000, Y: float64(v.Value)})
				}
				if len(xys) == 0 {
					continue
				}
				l, err := plotter.NewLine(xys)
				if err != nil {
					return nil, err
				}
				l.Color = plotutilColor(lines + qi)
				l.Width = vg.Points(1)
				pl.Add(l)
				pl.Legend.Add(shorten(legendFromMetric(q.Legend, s.Metric)), l)
				lines++
			}
		}
		pl.X.Label.Text = "seconds"
		pl.X.Label.TextStyle.Font.Size = vg.Points(6)
		return pl, nil
	}
}

var palette = []color.Color{
	color.RGBA{0x73, 0xbf, 0x69, 0xff}, color.RGBA{0xf2, 0xcc, 0x0c, 0xff}, color.RGBA{0x57, 0x94, 0xf2, 0xff},
	color.RGBA{0xff, 0x78, 0x0a, 0xff}, color.RGBA{0xb8, 0x77, 0xd9, 0xff}, color.RGBA{0xf2, 0x49, 0x5c, 0xff},
}

func plotutilColor(i int) color.Color { return palette[i%len(palette)] }

var legendRef = regexp.MustCompile(`\{\{([a-zA-Z_][a-zA-Z0-9_]*)\}\}`)

func legendFromMetric(legend string, m model.Metric) string {
	if legend == "" {
		return "total"
	}
	return legendRef.ReplaceAllStringFunc(legend, func(ref string) string {
		return string(m[model.LabelName(legendRef.FindStringSubmatch(ref)[1])])
	})
}

var keyLabel = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// legendFromKey renders a legend from a group key {a="x",b="y"}.
func legendFromKey(legend, key string) string {
	m := model.Metric{}
	for _, kv := range keyLabel.FindAllStringSubmatch(key, -1) {
		m[model.LabelName(kv[1])] = model.LabelValue(kv[2])
	}
	if l := strings.TrimSpace(legendFromMetric(legend, m)); l != "" {
		return l
	}
	return "(none)"
}

func shorten(s string) string {
	const limit = 28
	if len(s) <= limit {
		return s
	}
	return s[:limit-1] + "…"
}

func formatValue(v float64, unit string) string {
	switch unit {
	case "currencyUSD":
		return fmt.Sprintf("$%.2f", v)
	case "s":
		return fmt.Sprintf("%.1f h", v/3600)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

func renderGrid(title string, plots []*plot.Plot, path string) error {
	rows := (len(plots) + previewColumns - 1) / previewColumns
	grid := make([][]*plot.Plot, rows)
	for i := range grid {
		grid[i] = make([]*plot.Plot, previewColumns)
	}
	for i := range rows * previewColumns {
		if i < len(plots) {
			grid[i/previewColumns][i%previewColumns] = plots[i]
			continue
		}
		blank := plot.New()
		blank.HideAxes()
		grid[i/previewColumns][i%previewColumns] = blank
	}
	width, height := vg.Length(previewColumns*tileWidth), vg.Length(rows*tileHeight+30)
	img := vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(72), vgimg.UseBackgroundColor(color.White))
	dc := draw.New(img)
	titleStyle := draw.TextStyle{Color: color.Black, Font: plot.DefaultFont, Handler: plot.DefaultTextHandler}
	titleStyle.Font.Size = vg.Points(16)
	dc.FillText(titleStyle, vg.Point{X: 10, Y: height - 22}, title)
	body := draw.Crop(dc, 0, 0, 0, -30)
	canvases := plot.Align(grid, draw.Tiles{Rows: rows, Cols: previewColumns, PadX: 8, PadY: 8, PadTop: 4, PadBottom: 4, PadLeft: 4, PadRight: 4}, body)
	for i, p := range plots {
		p.Draw(canvases[i/previewColumns][i%previewColumns])
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}
