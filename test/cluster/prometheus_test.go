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

	"github.com/deltapipeline/deltapipeline/cmd/loadgen/totals"
	"github.com/deltapipeline/deltapipeline/test/e2e/harness"
)

// The receiver: a real Prometheus pod accepting remote write, which also
// scrapes every worker's status endpoint by its pod DNS name, so the suite
// sees the workers' own metrics as a pod in another namespace does.
const (
	receiverNamespace = "receiver"
	receiverName      = "prometheus"
	receiverPort      = 9090
)

// receiverWriteURL is the remote write endpoint the pipelines write to,
// resolved through cluster DNS.
func receiverWriteURL() string {
	return fmt.Sprintf("http://%s.%s.svc:%d/api/v1/write", receiverName, receiverNamespace, receiverPort)
}

// prometheusConfig scrapes the status endpoint of each worker target.
func prometheusConfig(workerTargets []string) string {
	var b strings.Builder
	b.WriteString("global:\n  scrape_interval: 2s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: deltapipeline-workers\n    static_configs:\n      - targets:\n")
	for _, t := range workerTargets {
		fmt.Fprintf(&b, "          - %s\n", t)
	}
	return b.String()
}

func receiverObjects(image string, workerTargets []string) (*corev1.ConfigMap, *appsv1.Deployment, *corev1.Service) {
	labels := map[string]string{"app.kubernetes.io/name": receiverName}
	config := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: receiverName, Namespace: receiverNamespace},
		Data:       map[string]string{"prometheus.yml": prometheusConfig(workerTargets)},
	}
	deployment := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: receiverName, Namespace: receiverNamespace, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					SecurityContext: restrictedPodSecurity(65532),
					Containers: []corev1.Container{{
						Name:  receiverName,
						Image: image,
						Args: []string{
							"--config.file=/etc/prometheus/prometheus.yml",
							"--storage.tsdb.path=/prometheus",
							"--storage.tsdb.retention.time=1d",
							"--web.enable-remote-write-receiver",
							fmt.Sprintf("--web.listen-address=:%d", receiverPort),
						},
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: receiverPort}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/-/ready", Port: intstr.FromInt32(receiverPort)}},
							PeriodSeconds: 2,
						},
						SecurityContext: restrictedContainerSecurity(),
						VolumeMounts: []corev1.VolumeMount{
							{Name: "config", MountPath: "/etc/prometheus", ReadOnly: true},
							{Name: "data", MountPath: "/prometheus"},
						},
					}},
					Volumes: []corev1.Volume{
						{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
							LocalObjectReference: corev1.LocalObjectReference{Name: receiverName},
						}}},
						{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
					},
				},
			},
		},
	}
	service := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: receiverName, Namespace: receiverNamespace, Labels: labels},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports:    []corev1.ServicePort{{Name: "http", Port: receiverPort, TargetPort: intstr.FromInt32(receiverPort)}},
		},
	}
	return config, deployment, service
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

// samples reads every raw sample Prometheus stored for the series matching
// selector within the last window, keyed as the load generator keys its
// ledger. Prometheus knows no writer, so every sample counts as worker 0.
func (p prometheusAPI) samples(ctx context.Context, selector string, window time.Duration) (map[string][]harness.Sample, error) {
	resp, err := p.query(ctx, fmt.Sprintf("%s[%ds]", selector, int(window.Seconds())))
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

// scalar returns the single value of an instant query, 0 when it has none.
func (p prometheusAPI) scalar(ctx context.Context, q string) (float64, error) {
	resp, err := p.query(ctx, q)
	if err != nil {
		return 0, err
	}
	switch len(resp.Data.Result) {
	case 0:
		return 0, nil
	case 1:
		_, v, err := samplePair(resp.Data.Result[0].Value)
		return v, err
	}
	return 0, fmt.Errorf("query %q returned %d series, want one", q, len(resp.Data.Result))
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
