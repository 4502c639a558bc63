package harness

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Scrape is one read of a Prometheus text exposition (the gateways' and
// workers' self-metrics).
type Scrape []scrapedSample

type scrapedSample struct {
	name   string
	labels map[string]string
	value  float64
}

// ScrapeMetrics reads a /metrics endpoint.
func ScrapeMetrics(ctx context.Context, url string) (Scrape, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", url, err)
	}
	// The text format: every exporter here serves it, and it is simple to
	// read without a parser that must agree with the one under test.
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scraping %s: %s", url, resp.Status)
	}
	var out Scrape
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		s, err := parseSampleLine(line)
		if err != nil {
			return nil, fmt.Errorf("scraping %s: %w", url, err)
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("scraping %s: %w", url, err)
	}
	return out, nil
}

// Sum adds the values of every sample of name whose labels include match.
func (s Scrape) Sum(name string, match map[string]string) float64 {
	var total float64
	for _, sample := range s {
		if sample.name != name {
			continue
		}
		ok := true
		for k, v := range match {
			if sample.labels[k] != v {
				ok = false
				break
			}
		}
		if ok {
			total += sample.value
		}
	}
	return total
}

// Has reports whether any sample of name is present.
func (s Scrape) Has(name string) bool {
	for _, sample := range s {
		if sample.name == name {
			return true
		}
	}
	return false
}

// parseSampleLine reads `name{a="x",b="y"} value [timestamp]`.
func parseSampleLine(line string) (scrapedSample, error) {
	s := scrapedSample{labels: map[string]string{}}
	rest := line
	if i := strings.IndexAny(rest, "{ "); i < 0 {
		return s, fmt.Errorf("sample line %q has no value", line)
	} else {
		s.name, rest = rest[:i], rest[i:]
	}
	if strings.HasPrefix(rest, "{") {
		rest = rest[1:]
		for {
			rest = strings.TrimLeft(rest, ", ")
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			eq := strings.Index(rest, `="`)
			if eq < 0 {
				return s, fmt.Errorf("sample line %q: bad labels", line)
			}
			name := rest[:eq]
			rest = rest[eq+2:]
			var value strings.Builder
			i := 0
			for ; i < len(rest) && rest[i] != '"'; i++ {
				if rest[i] == '\\' && i+1 < len(rest) {
					i++
					switch rest[i] {
					case 'n':
						value.WriteByte('\n')
					default:
						value.WriteByte(rest[i])
					}
					continue
				}
				value.WriteByte(rest[i])
			}
			if i >= len(rest) {
				return s, fmt.Errorf("sample line %q: unterminated label value", line)
			}
			s.labels[name] = value.String()
			rest = rest[i+1:]
		}
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return s, fmt.Errorf("sample line %q has no value", line)
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return s, fmt.Errorf("sample line %q: value: %w", line, err)
	}
	s.value = v
	return s, nil
}

// ParseSeriesKey splits a series key as Prometheus prints it (and as the
// load generator's ledger stores it) into the metric name and its labels.
func ParseSeriesKey(key string) (string, map[string]string, error) {
	s, err := parseSampleLine(key + " 0")
	if err != nil {
		return "", nil, fmt.Errorf("series key %q: %w", key, err)
	}
	return s.name, s.labels, nil
}
