package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// EnvPrometheus names the bin/prometheus binary; the Makefile sets it.
const EnvPrometheus = "PROMETHEUS_BINARY"

// Prometheus is a real Prometheus server (bin/prometheus, built from the
// upstream module by `make prometheus`) on loopback, with the remote write
// receiver on and its TSDB in the run directory. It scrapes the targets of
// a file_sd file the harness writes once the pipeline's ports are known.
type Prometheus struct {
	*Process
	URL         string
	targetsPath string
	api         promv1.API
}

// ScrapeTarget is one /metrics endpoint with the target labels a Kubernetes
// scrape (the operator's PodMonitors) attaches.
type ScrapeTarget struct {
	Address string
	Labels  map[string]string
}

// PrometheusScrapeInterval is how often the local Prometheus scrapes the
// gateways and workers.
const PrometheusScrapeInterval = time.Second

// StartPrometheus starts bin/prometheus with its data under dir.
func StartPrometheus(ctx context.Context, binary, dir string) (*Prometheus, error) {
	if binary == "" {
		return nil, fmt.Errorf("%s is not set (the path of the binary `make prometheus` builds)", EnvPrometheus)
	}
	if _, err := os.Stat(binary); err != nil {
		return nil, fmt.Errorf("%s=%s: %w (build it with `make prometheus`)", EnvPrometheus, binary, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "tsdb"), 0o755); err != nil {
		return nil, fmt.Errorf("creating Prometheus' data directory: %w", err)
	}
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	p := &Prometheus{URL: "http://" + loopback(ports[0]), targetsPath: filepath.Join(dir, "targets.json")}
	if err := p.SetTargets(nil); err != nil {
		return nil, err
	}
	config := fmt.Sprintf(`global:
  scrape_interval: %[1]s
  evaluation_interval: %[1]s
scrape_configs:
  - job_name: deltapipeline
    file_sd_configs:
      - files: [%[2]q]
`, PrometheusScrapeInterval, p.targetsPath)
	configPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		return nil, fmt.Errorf("writing Prometheus' configuration: %w", err)
	}
	p.Process = &Process{
		Name: "prometheus",
		Path: binary,
		Args: []string{
			"--config.file=" + configPath,
			"--storage.tsdb.path=" + filepath.Join(dir, "tsdb"),
			"--web.listen-address=" + loopback(ports[0]),
			"--web.enable-remote-write-receiver",
		},
		LogPath: filepath.Join(dir, "prometheus.log"),
	}
	client, err := promapi.NewClient(promapi.Config{Address: p.URL})
	if err != nil {
		return nil, fmt.Errorf("building the Prometheus API client: %w", err)
	}
	p.api = promv1.NewAPI(client)
	if err := p.Start(); err != nil {
		return nil, err
	}
	waitCtx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if err := p.WaitHTTPOK(waitCtx, p.URL+"/-/ready"); err != nil {
		return nil, errors.Join(err, p.Stop(10*time.Second))
	}
	return p, nil
}

// RemoteWriteURL is the receiver's endpoint.
func (p *Prometheus) RemoteWriteURL() string { return p.URL + "/api/v1/write" }

// SetTargets replaces the scraped targets (Prometheus watches the file).
func (p *Prometheus) SetTargets(targets []ScrapeTarget) error {
	type group struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels,omitempty"`
	}
	groups := []group{}
	for _, t := range targets {
		groups = append(groups, group{Targets: []string{t.Address}, Labels: t.Labels})
	}
	out, err := json.Marshal(groups)
	if err != nil {
		return fmt.Errorf("encoding the scrape targets: %w", err)
	}
	tmp := p.targetsPath + ".tmp"
	if err := os.WriteFile(tmp, out, 0o644); err != nil {
		return fmt.Errorf("writing the scrape targets: %w", err)
	}
	if err := os.Rename(tmp, p.targetsPath); err != nil {
		return fmt.Errorf("writing the scrape targets: %w", err)
	}
	return nil
}

// Query evaluates expr at t.
func (p *Prometheus) Query(ctx context.Context, expr string, t time.Time) (model.Vector, error) {
	v, _, _, err := p.api.Query(ctx, expr, t)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", expr, err)
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("query %s: got a %s, want a vector", expr, v.Type())
	}
	return vec, nil
}

// QueryRange evaluates expr over [start, end] every step.
func (p *Prometheus) QueryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) (model.Matrix, error) {
	v, _, _, err := p.api.QueryRange(ctx, expr, promv1.Range{Start: start, End: end, Step: step})
	if err != nil {
		return nil, fmt.Errorf("range query %s: %w", expr, err)
	}
	m, ok := v.(model.Matrix)
	if !ok {
		return nil, fmt.Errorf("range query %s: got a %s, want a matrix", expr, v.Type())
	}
	return m, nil
}

// ScrapeTargets are the gateways' and workers' telemetry endpoints, labelled
// with the namespace and pod names they would have in the cluster.
func (p *Pipeline) ScrapeTargets() []ScrapeTarget {
	var out []ScrapeTarget
	for i, g := range p.Gateways {
		out = append(out, ScrapeTarget{
			Address: hostPort(g.MetricsURL),
			Labels:  map[string]string{"namespace": p.Namespace, "pod": fmt.Sprintf("%s-gateway-%d", p.Name, i)},
		})
	}
	for _, w := range p.Workers {
		out = append(out, ScrapeTarget{
			Address: hostPort(w.TelemetryURL),
			Labels:  map[string]string{"namespace": p.Namespace, "pod": fmt.Sprintf("%s-worker-%d", p.Name, w.Ordinal)},
		})
	}
	return out
}

// hostPort is the host:port of a loopback URL the harness built.
func hostPort(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Host
}
