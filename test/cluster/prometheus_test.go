package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/deltapipeline/deltapipeline/cmd/loadgen/totals"
	"github.com/deltapipeline/deltapipeline/internal/manifests"
	"github.com/deltapipeline/deltapipeline/test/e2e/harness"
)

// The receiver is a pod in its own namespace that the workers reach through
// cluster DNS: a real Prometheus with its remote write receiver enabled, or,
// where no Prometheus image was built, the end-to-end suite's receiver
// (hack/cluster/receiver). Both listen on receiverPort behind one Service.
const (
	receiverNamespace = "receiver"
	receiverName      = "remote-write-receiver"
	receiverPort      = 9090
	// receiverReadPort serves the harness receiver's samples.
	receiverReadPort = 9091
)

// receiver is what the suite reads back from the receiver pod.
type receiver interface {
	// samples returns every sample of the series matching the client's
	// job, keyed as the load generator keys its ledger.
	samples(ctx context.Context) (map[string][]harness.Sample, error)
	// refused counts samples or requests the receiver turned away.
	refused(ctx context.Context) (float64, error)
}

// receiverWritePath is where the workers write, by receiver kind.
func receiverWritePath(prometheus bool) string {
	if prometheus {
		return "/api/v1/write"
	}
	return harness.WritePath(0)
}

// receiverWriteURL is the remote write endpoint the pipelines write to,
// resolved through cluster DNS.
func receiverWriteURL(prometheus bool) string {
	return fmt.Sprintf("http://%s.%s.svc:%d%s", receiverName, receiverNamespace, receiverPort, receiverWritePath(prometheus))
}

// receiverObjects is the receiver's Deployment and Service; Prometheus also
// gets its (empty) configuration file.
func receiverObjects(env suiteEnv) ([]client.Object, *corev1.Service) {
	labels := map[string]string{"app.kubernetes.io/name": receiverName}
	container := corev1.Container{
		Name:            receiverName,
		Ports:           []corev1.ContainerPort{{Name: "write", ContainerPort: receiverPort}},
		SecurityContext: manifests.RestrictedContainerSecurityContext(),
	}
	var volumes []corev1.Volume
	var objects []client.Object
	if env.PrometheusImage != "" {
		container.Image = env.PrometheusImage
		container.Args = []string{
			"--config.file=/etc/prometheus/prometheus.yml",
			"--storage.tsdb.path=/prometheus",
			"--storage.tsdb.retention.time=1d",
			"--web.enable-remote-write-receiver",
			fmt.Sprintf("--web.listen-address=:%d", receiverPort),
		}
		container.ReadinessProbe = &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/-/ready", Port: intstr.FromInt32(receiverPort)}},
			PeriodSeconds: 2,
		}
		container.VolumeMounts = []corev1.VolumeMount{
			{Name: "config", MountPath: "/etc/prometheus", ReadOnly: true},
			{Name: "data", MountPath: "/prometheus"},
		}
		volumes = []corev1.Volume{
			{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: receiverName},
			}}},
			{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		}
		objects = append(objects, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: receiverName, Namespace: receiverNamespace},
			Data:       map[string]string{"prometheus.yml": "global:\n  scrape_interval: 1m\n"},
		})
	} else {
		container.Image = env.ReceiverImage
		container.Args = []string{fmt.Sprintf("--listen=:%d", receiverPort), fmt.Sprintf("--listen-read=:%d", receiverReadPort)}
		// The harness package links envtest, whose init creates a
		// directory under /tmp.
		container.VolumeMounts = []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}}
		volumes = []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		container.Ports = append(container.Ports, corev1.ContainerPort{Name: "read", ContainerPort: receiverReadPort})
		container.ReadinessProbe = &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/stats", Port: intstr.FromInt32(receiverReadPort)}},
			PeriodSeconds: 2,
		}
	}
	deployment := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: receiverName, Namespace: receiverNamespace, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					SecurityContext: manifests.RestrictedPodSecurityContext(65532),
					Containers:      []corev1.Container{container},
					Volumes:         volumes,
				},
			},
		},
	}
	service := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: receiverName, Namespace: receiverNamespace, Labels: labels},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports: []corev1.ServicePort{
				{Name: "write", Port: receiverPort, TargetPort: intstr.FromInt32(receiverPort)},
				{Name: "read", Port: receiverReadPort, TargetPort: intstr.FromInt32(receiverReadPort)},
			},
		},
	}
	return append(objects, deployment, service), service
}

// harnessReceiver reads the end-to-end suite's receiver at base.
type harnessReceiver struct {
	base string
	http *http.Client
}

func (h harnessReceiver) get(ctx context.Context, path string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := h.http.Do(req)
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("reading %s: HTTP %d", path, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(into)
}

func (h harnessReceiver) samples(ctx context.Context) (map[string][]harness.Sample, error) {
	var all map[string][]harness.Sample
	if err := h.get(ctx, "/samples", &all); err != nil {
		return nil, err
	}
	for key := range all {
		if !strings.Contains(key, `job="claude-code"`) {
			delete(all, key)
		}
	}
	return all, nil
}

func (h harnessReceiver) refused(ctx context.Context) (float64, error) {
	var stats struct {
		Refused float64 `json:"refused"`
	}
	err := h.get(ctx, "/stats", &stats)
	return stats.Refused, err
}

// prometheusAPI queries the receiver's HTTP API at base (http://IP:port).
type prometheusAPI struct {
	base string
	http *http.Client
}

type promResponse struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Values [][2]any          `json:"values"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	} `json:"data"`
}

func (p prometheusAPI) query(ctx context.Context, q string) (promResponse, error) {
	var out promResponse
	form := url.Values{"query": {q}, "time": {strconv.FormatInt(time.Now().Unix(), 10)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+"/api/v1/query", strings.NewReader(form.Encode()))
	if err != nil {
		return out, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.http.Do(req)
	if err != nil {
		return out, fmt.Errorf("querying %q: %w", q, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return out, fmt.Errorf("reading the answer to %q: %w", q, err)
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return out, fmt.Errorf("decoding the answer to %q (HTTP %d): %w", q, resp.StatusCode, err)
	}
	if out.Status != "success" {
		return out, fmt.Errorf("query %q: %s: %s", q, out.ErrorType, out.Error)
	}
	return out, nil
}

// samples reads every raw sample Prometheus stored in the last hour for the
// client's series. Prometheus knows no writer, so every sample counts as
// worker 0.
func (p prometheusAPI) samples(ctx context.Context) (map[string][]harness.Sample, error) {
	const selector = `{job="claude-code"}`
	resp, err := p.query(ctx, selector+"[1h]")
	if err != nil {
		return nil, err
	}
	if resp.Data.ResultType != "matrix" {
		return nil, fmt.Errorf("range selector %s answered with a %s", selector, resp.Data.ResultType)
	}
	out := make(map[string][]harness.Sample, len(resp.Data.Result))
	for _, series := range resp.Data.Result {
		labels := make(map[string]string, len(series.Metric))
		for k, v := range series.Metric {
			labels[k] = v
		}
		name := labels["__name__"]
		delete(labels, "__name__")
		key := totals.SeriesKey(name, labels)
		for _, pair := range series.Values {
			ts, value, err := samplePair(pair)
			if err != nil {
				return nil, fmt.Errorf("series %s: %w", key, err)
			}
			out[key] = append(out[key], harness.Sample{TimestampMs: ts, Value: value})
		}
	}
	return out, nil
}

// refused counts the samples Prometheus refused for being out of order or
// out of its time window, read from its own metrics.
func (p prometheusAPI) refused(ctx context.Context) (float64, error) {
	m, err := harness.ScrapeMetrics(ctx, p.base+"/metrics")
	if err != nil {
		return 0, err
	}
	return m.Sum("prometheus_tsdb_out_of_order_samples_total", nil) + m.Sum("prometheus_tsdb_out_of_bound_samples_total", nil), nil
}

// samplePair decodes Prometheus's [seconds, "value"] pair.
func samplePair(pair [2]any) (int64, float64, error) {
	seconds, ok := pair[0].(float64)
	if !ok {
		return 0, 0, fmt.Errorf("sample timestamp %v is not a number", pair[0])
	}
	text, ok := pair[1].(string)
	if !ok {
		return 0, 0, fmt.Errorf("sample value %v is not a string", pair[1])
	}
	value, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("sample value %q: %w", text, err)
	}
	return int64(math.Round(seconds * 1000)), value, nil
}
