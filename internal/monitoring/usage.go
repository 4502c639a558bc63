package monitoring

import (
	"fmt"
	"strings"
)

// Variables of the Claude Code usage dashboard.
var (
	userVariable    = Variable{Name: "user", Label: "User", Metric: ClaudeSessions, LabelName: LabelUser}
	modelVariable   = Variable{Name: "model", Label: "Model", Metric: ClaudeTokens, LabelName: LabelModel}
	sessionVariable = Variable{Name: "session", Label: "Session", Metric: ClaudeSessions, LabelName: LabelSession}
)

func matchVariable(v Variable) string { return fmt.Sprintf(`%s=~"$%s"`, v.LabelName, v.Name) }

// usageSelector filters a Claude Code metric by the dashboard's variables;
// withModel adds the model filter for the metrics that carry the label.
func usageSelector(metric string, withModel bool, extra ...string) string {
	m := []string{matchVariable(userVariable), matchVariable(sessionVariable)}
	if withModel {
		m = append(m, matchVariable(modelVariable))
	}
	return selector(metric, append(m, extra...)...)
}

// usageTotal sums a Claude Code counter over the dashboard range, per the
// by labels, and records what the ledger must show for it.
func usageTotal(metric string, withModel bool, match map[string]string, by ...string) Query {
	var extra []string
	for k, v := range match {
		extra = append(extra, fmt.Sprintf(`%s=%q`, k, v))
	}
	expr := "sum(" + totalInRange(usageSelector(metric, withModel, extra...)) + ")"
	legend := ""
	if len(by) > 0 {
		expr = fmt.Sprintf("sum by (%s) (%s)", joinLabels(by), totalInRange(usageSelector(metric, withModel, extra...)))
		legend = legendOf(by)
	}
	return Query{Expr: expr, Legend: legend, Total: &LedgerTotal{Metric: metric, Match: match, By: by}}
}

// usagePer is how much a Claude Code counter grew in the window before each
// point of the graph, per the by labels: "tokens per minute" with window 1m.
func usagePer(metric string, withModel bool, window string, by ...string) Query {
	expr := fmt.Sprintf("sum by (%s) (%s)", joinLabels(by), growth(usageSelector(metric, withModel), window))
	return Query{Expr: expr, Legend: legendOf(by)}
}

func joinLabels(labels []string) string { return strings.Join(labels, ", ") }

func legendOf(labels []string) string {
	out := ""
	for i, l := range labels {
		if i > 0 {
			out += " "
		}
		out += "{{" + l + "}}"
	}
	return out
}

// ClaudeCodeUsage is who spends how many tokens and dollars on which model,
// sessions, lines of code and edit decisions, from the converted series.
func ClaudeCodeUsage() Dashboard {
	return Dashboard{
		UID:   "deltapipeline-claude-code-usage",
		Title: "Claude Code usage",
		File:  "claude-code-usage.json",
		Description: "Tokens, cost, sessions, lines of code, edit decisions and active time of Claude Code, " +
			"from the cumulative series DeltaPipeline converts. Totals cover the dashboard's time range.",
		Tags:      []string{"deltapipeline", "claude-code"},
		Variables: []Variable{userVariable, modelVariable, sessionVariable},
		Rows: []Row{
			{Title: "Totals over the time range", Panels: []Panel{
				{Title: "Tokens", Kind: Stat, Unit: "short", Queries: []Query{usageTotal(ClaudeTokens, true, nil)},
					Description: "Tokens of every type (input, output, cache read, cache creation)."},
				{Title: "Cost", Kind: Stat, Unit: "currencyUSD", Queries: []Query{usageTotal(ClaudeCost, true, nil)},
					Description: "Cost Claude Code estimated for its requests, in US dollars."},
				{Title: "Sessions", Kind: Stat, Unit: "short", Queries: []Query{usageTotal(ClaudeSessions, false, nil)},
					Description: "Sessions started (fresh, resumed or continued)."},
				{Title: "Lines added", Kind: Stat, Unit: "short", Queries: []Query{usageTotal(ClaudeLinesOfCode, true, map[string]string{LabelType: "added"})}},
				{Title: "Lines removed", Kind: Stat, Unit: "short", Queries: []Query{usageTotal(ClaudeLinesOfCode, true, map[string]string{LabelType: "removed"})}},
				{Title: "Active time", Kind: Stat, Unit: "s", Queries: []Query{usageTotal(ClaudeActiveTime, false, nil)},
					Description: "Time users and the CLI were active."},
			}},
			{Title: "Tokens", Panels: []Panel{
				{Title: "Tokens by type", Kind: BarGauge, Unit: "short", Width: 8, Queries: []Query{usageTotal(ClaudeTokens, true, nil, LabelType)}},
				{Title: "Tokens by model", Kind: BarGauge, Unit: "short", Width: 8, Queries: []Query{usageTotal(ClaudeTokens, true, nil, LabelModel)}},
				{Title: "Tokens by user", Kind: BarGauge, Unit: "short", Width: 8, Queries: []Query{usageTotal(ClaudeTokens, true, nil, LabelUser)}},
				{Title: "Tokens per minute by type", Kind: TimeSeries, Unit: "short", Width: 24,
					Description: "Tokens in the minute before each point.",
					Queries:     []Query{usagePer(ClaudeTokens, true, "1m", LabelType)}},
			}},
			{Title: "Cost", Panels: []Panel{
				{Title: "Cost by model", Kind: BarGauge, Unit: "currencyUSD", Width: 8, Queries: []Query{usageTotal(ClaudeCost, true, nil, LabelModel)}},
				{Title: "Cost by user", Kind: BarGauge, Unit: "currencyUSD", Width: 8, Queries: []Query{usageTotal(ClaudeCost, true, nil, LabelUser)}},
				{Title: "Cost per hour by model", Kind: TimeSeries, Unit: "currencyUSD", Width: 8,
					Description: "US dollars in the hour before each point.",
					Queries:     []Query{usagePer(ClaudeCost, true, "1h", LabelModel)}},
			}},
			{Title: "Activity", Panels: []Panel{
				{Title: "Sessions started per minute", Kind: TimeSeries, Unit: "short", Width: 8,
					Description: "Sessions started in the minute before each point.",
					Queries:     []Query{usagePer(ClaudeSessions, false, "1m")}},
				{Title: "Lines of code per minute", Kind: TimeSeries, Unit: "short", Width: 8,
					Description: "Lines added and removed in the minute before each point.",
					Queries:     []Query{usagePer(ClaudeLinesOfCode, true, "1m", LabelType)}},
				{Title: "Active time by type", Kind: BarGauge, Unit: "s", Width: 8, Queries: []Query{usageTotal(ClaudeActiveTime, false, nil, LabelType)}},
				{Title: "Edit decisions", Kind: BarGauge, Unit: "short", Width: 12,
					Description: "Permission decisions on code editing tools, by decision and tool.",
					Queries:     []Query{usageTotal(ClaudeEditDecisions, false, nil, LabelDecision, LabelToolName)}},
				{Title: "Sessions by user", Kind: BarGauge, Unit: "short", Width: 12, Queries: []Query{usageTotal(ClaudeSessions, false, nil, LabelUser)}},
			}},
		},
	}
}
