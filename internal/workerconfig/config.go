// Package workerconfig owns the worker's configuration file: its schema, its
// defaults, its validation and its YAML encoding.
//
// The operator renders this file into the worker ConfigMap and the worker
// reads it at start, so both sides share this one Go type: a field added here
// is a field both understand. docs/worker-config.md documents every field.
package workerconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Ports the worker listens on by default. The operator uses the same
// constants for container ports, Services and probes.
const (
	DefaultOTLPGRPCPort   = 4317
	DefaultOTLPHTTPPort   = 4318
	DefaultTelemetryPort  = 8888
	DefaultPrometheusPort = 9464
	DefaultPeerPort       = 4319
)

// GatewayRetryBudget is how long a gateway keeps retrying a request to one
// worker before it drops it (the rendered max_elapsed_time). The operator
// renders it; the converter keeps intervals younger than it, because
// points that repeat or overlap them may still be on their way.
const GatewayRetryBudget = 180 * time.Second

// Writers selects how the converter treats points of one stream whose
// intervals overlap, which happens when several processes write the same
// stream (for example two Claude Code processes sharing a session.id).
type Writers string

const (
	// WritersShared sums overlapping intervals: every writer's deltas count.
	WritersShared Writers = "shared"
	// WritersSingle assumes one writer per stream and drops (and counts) a
	// point whose interval starts before the end of the last one applied.
	WritersSingle Writers = "single"
)

// Config is the worker's whole configuration file.
type Config struct {
	Receivers  Receivers  `json:"receivers"`
	Conversion Conversion `json:"conversion"`
	State      State      `json:"state"`
	Exporters  Exporters  `json:"exporters"`
	Telemetry  Telemetry  `json:"telemetry"`
	// Handoff, when set, makes the worker one member of a ring whose
	// workers hand streams over when the membership changes.
	Handoff *Handoff `json:"handoff,omitempty"`
}

// Handoff configures the hand-over of streams between workers.
type Handoff struct {
	// Member is this worker's name in the membership; empty means the host
	// name, which in a StatefulSet is the pod name.
	Member string `json:"member,omitempty"`
	// RoutingKey and RoutingAttributes are the gateways' routing key, so
	// that the worker knows which streams are its own.
	RoutingKey        string   `json:"routingKey"`
	RoutingAttributes []string `json:"routingAttributes,omitempty"`
	// Membership is where the operator publishes the ring.
	Membership MembershipSource `json:"membership"`
	// Peer is the server other workers hand streams over to.
	Peer PeerServer `json:"peer"`
}

// MembershipSource names exactly one of a ConfigMap and a file.
type MembershipSource struct {
	ConfigMap *ConfigMapRef `json:"configMap,omitempty"`
	// File is read again every PollInterval.
	File         string   `json:"file,omitempty"`
	PollInterval Duration `json:"pollInterval,omitzero"`
}

// ConfigMapRef is a key of a ConfigMap, watched through the Kubernetes API
// with the pod's service account.
type ConfigMapRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Key       string `json:"key"`
}

// PeerServer configures the peer protocol's listener.
type PeerServer struct {
	// Endpoint is the listen address, host:port.
	Endpoint string `json:"endpoint"`
	// TokenFile holds the token peers present; a peer without it is
	// refused.
	TokenFile string `json:"tokenFile"`
}

// Receivers configures how data reaches the worker.
type Receivers struct {
	OTLP OTLPReceiver `json:"otlp"`
}

// OTLPReceiver configures the OTLP/gRPC and OTLP/HTTP servers.
type OTLPReceiver struct {
	GRPC GRPCServer `json:"grpc"`
	HTTP HTTPServer `json:"http"`
	// MaxConcurrentRequests bounds requests processed at once over both
	// transports; beyond it requests are refused as retryable (gRPC
	// UNAVAILABLE, HTTP 503 with Retry-After) instead of queueing in memory.
	MaxConcurrentRequests int `json:"maxConcurrentRequests"`
	// AuthTokenFile, when set, names a file of accepted bearer tokens, one
	// per line (the format of the collector's bearertokenauth extension).
	// Both servers then refuse a request without "Authorization: Bearer
	// <token>" as UNAUTHENTICATED (gRPC) or 401 (HTTP). The file is read
	// again every second, so a rotated Secret takes effect without a restart.
	AuthTokenFile string `json:"authTokenFile,omitempty"`
}

// GRPCServer configures the OTLP/gRPC listener.
type GRPCServer struct {
	// Endpoint is the listen address, host:port.
	Endpoint string `json:"endpoint"`
	// MaxRecvMsgSizeMiB bounds one request's decoded size.
	MaxRecvMsgSizeMiB int `json:"maxRecvMsgSizeMiB"`
}

// HTTPServer configures the OTLP/HTTP listener (path /v1/metrics).
type HTTPServer struct {
	// Endpoint is the listen address, host:port.
	Endpoint string `json:"endpoint"`
	// MaxRequestBodyMiB bounds one request's body after decompression.
	MaxRequestBodyMiB int `json:"maxRequestBodyMiB"`
}

// Conversion configures the delta-to-cumulative engine.
type Conversion struct {
	// MaxStreams bounds the number of streams held; points of new streams
	// beyond it are refused and counted, existing streams keep working.
	MaxStreams int `json:"maxStreams"`
	// MaxStale is how long a stream may go without a point before it is
	// forgotten.
	MaxStale Duration `json:"maxStale"`
	// Interval is how often cumulative values of updated streams are emitted.
	Interval Duration `json:"interval"`
	// Writers is "shared" (default) or "single"; see Writers.
	Writers Writers `json:"writers"`
}

// State configures durable per-stream state.
type State struct {
	// Directory holds the checkpoint and write-ahead log. Empty keeps state
	// in memory only: a restart then resets every series.
	Directory string `json:"directory,omitempty"`
	// CheckpointInterval is how often the full state is written.
	CheckpointInterval Duration `json:"checkpointInterval"`
}

// Exporters lists the destinations; at least one must be set.
type Exporters struct {
	PrometheusRemoteWrite *RemoteWriteExporter `json:"prometheusRemoteWrite,omitempty"`
	OTLP                  *OTLPExporter        `json:"otlp,omitempty"`
	Prometheus            *PrometheusExporter  `json:"prometheus,omitempty"`
}

// RemoteWriteExporter sends Prometheus remote write 1.0 requests.
type RemoteWriteExporter struct {
	// Endpoint is the remote write URL, for example
	// https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-.../api/v1/remote_write.
	Endpoint string `json:"endpoint"`
	// SigV4 signs requests for Amazon Managed Service for Prometheus.
	SigV4 *SigV4 `json:"sigv4,omitempty"`
	// Headers are added to every request.
	Headers []Header `json:"headers,omitempty"`
	// BasicAuth sets the Authorization header from a username and a password file.
	BasicAuth *BasicAuth `json:"basicAuth,omitempty"`
	// BearerTokenFile holds a token sent as "Authorization: Bearer <token>".
	BearerTokenFile string `json:"bearerTokenFile,omitempty"`
	// TLS configures the client's TLS.
	TLS *TLS `json:"tls,omitempty"`
	// Timeout bounds one request.
	Timeout Duration `json:"timeout"`
	// QueueSize bounds the number of write requests waiting to be sent;
	// beyond it the oldest waiting request is dropped and counted.
	QueueSize int `json:"queueSize"`
	// Retry bounds retries of a request answered with 5xx or 429.
	Retry Retry `json:"retry"`
	// ExternalLabels are added to every series.
	ExternalLabels map[string]string `json:"externalLabels,omitempty"`
}

// SigV4 configures AWS Signature Version 4 signing (service "aps").
type SigV4 struct {
	// Region is the AWS region of the workspace; it is never guessed.
	Region string `json:"region"`
	// RoleARN, if set, is assumed with STS before signing.
	RoleARN string `json:"roleARN,omitempty"`
}

// Header is one request header; exactly one of Value, ValueFile, ValueEnv is set.
type Header struct {
	Name string `json:"name"`
	// Value is the literal value; use it only for values that are not secret.
	Value string `json:"value,omitempty"`
	// ValueFile is a file whose content (trailing newline removed) is the value.
	ValueFile string `json:"valueFile,omitempty"`
	// ValueEnv is an environment variable holding the value.
	ValueEnv string `json:"valueEnv,omitempty"`
}

// BasicAuth holds HTTP basic authentication credentials.
type BasicAuth struct {
	Username string `json:"username"`
	// PasswordFile is a file whose content is the password.
	PasswordFile string `json:"passwordFile"`
}

// TLS configures a TLS client.
type TLS struct {
	CAFile             string `json:"caFile,omitempty"`
	CertFile           string `json:"certFile,omitempty"`
	KeyFile            string `json:"keyFile,omitempty"`
	ServerName         string `json:"serverName,omitempty"`
	InsecureSkipVerify bool   `json:"insecureSkipVerify,omitempty"`
}

// Retry bounds how a failed request is retried with exponential backoff.
type Retry struct {
	InitialInterval Duration `json:"initialInterval"`
	MaxInterval     Duration `json:"maxInterval"`
	// MaxAttempts counts the first try; 1 disables retries.
	MaxAttempts int `json:"maxAttempts"`
}

// OTLPExporter sends cumulative metrics over OTLP/gRPC.
type OTLPExporter struct {
	// Endpoint is host:port of the OTLP/gRPC server.
	Endpoint string `json:"endpoint"`
	// Insecure sends without TLS.
	Insecure bool     `json:"insecure,omitempty"`
	Headers  []Header `json:"headers,omitempty"`
	TLS      *TLS     `json:"tls,omitempty"`
	// Compression is "gzip" (default) or "none".
	Compression string   `json:"compression,omitempty"`
	Timeout     Duration `json:"timeout"`
	// QueueSize bounds the number of export requests waiting to be sent;
	// beyond it the oldest waiting request is dropped and counted.
	QueueSize int   `json:"queueSize"`
	Retry     Retry `json:"retry"`
}

// PrometheusExporter serves the converted series for scraping at /metrics.
type PrometheusExporter struct {
	// Endpoint is the listen address, host:port.
	Endpoint string `json:"endpoint"`
}

// Telemetry configures the worker's own endpoints and logs.
type Telemetry struct {
	// Endpoint serves /metrics (self-metrics), /healthz and /readyz.
	Endpoint string `json:"endpoint"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `json:"logLevel"`
	// LogFormat is json or text.
	LogFormat string `json:"logFormat"`
}

// Default returns a configuration with every default set and no exporter.
func Default() Config {
	var c Config
	c.ApplyDefaults()
	return c
}

// ApplyDefaults fills every unset field with its default.
func (c *Config) ApplyDefaults() {
	setString(&c.Receivers.OTLP.GRPC.Endpoint, ":"+strconv.Itoa(DefaultOTLPGRPCPort))
	setInt(&c.Receivers.OTLP.GRPC.MaxRecvMsgSizeMiB, 16)
	setString(&c.Receivers.OTLP.HTTP.Endpoint, ":"+strconv.Itoa(DefaultOTLPHTTPPort))
	setInt(&c.Receivers.OTLP.HTTP.MaxRequestBodyMiB, 16)
	setInt(&c.Receivers.OTLP.MaxConcurrentRequests, 64)

	setInt(&c.Conversion.MaxStreams, 1_000_000)
	setDuration(&c.Conversion.MaxStale, 10*time.Minute)
	setDuration(&c.Conversion.Interval, 30*time.Second)
	if c.Conversion.Writers == "" {
		c.Conversion.Writers = WritersShared
	}

	setDuration(&c.State.CheckpointInterval, time.Minute)

	if rw := c.Exporters.PrometheusRemoteWrite; rw != nil {
		setDuration(&rw.Timeout, 30*time.Second)
		setInt(&rw.QueueSize, 1000)
		rw.Retry.applyDefaults()
	}
	if o := c.Exporters.OTLP; o != nil {
		if o.Compression == "" {
			o.Compression = "gzip"
		}
		setDuration(&o.Timeout, 30*time.Second)
		setInt(&o.QueueSize, 1000)
		o.Retry.applyDefaults()
	}
	if p := c.Exporters.Prometheus; p != nil {
		setString(&p.Endpoint, ":"+strconv.Itoa(DefaultPrometheusPort))
	}

	if h := c.Handoff; h != nil {
		setString(&h.Peer.Endpoint, ":"+strconv.Itoa(DefaultPeerPort))
		if h.Membership.File != "" {
			setDuration(&h.Membership.PollInterval, time.Second)
		}
	}

	setString(&c.Telemetry.Endpoint, ":"+strconv.Itoa(DefaultTelemetryPort))
	setString(&c.Telemetry.LogLevel, "info")
	setString(&c.Telemetry.LogFormat, "json")
}

func (r *Retry) applyDefaults() {
	setDuration(&r.InitialInterval, 500*time.Millisecond)
	setDuration(&r.MaxInterval, 30*time.Second)
	setInt(&r.MaxAttempts, 10)
}

// Validate reports every invalid field, each error naming the field's path.
func (c *Config) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}

	checkListen(add, "receivers.otlp.grpc.endpoint", c.Receivers.OTLP.GRPC.Endpoint)
	checkPositive(add, "receivers.otlp.grpc.maxRecvMsgSizeMiB", c.Receivers.OTLP.GRPC.MaxRecvMsgSizeMiB)
	checkListen(add, "receivers.otlp.http.endpoint", c.Receivers.OTLP.HTTP.Endpoint)
	checkPositive(add, "receivers.otlp.http.maxRequestBodyMiB", c.Receivers.OTLP.HTTP.MaxRequestBodyMiB)
	checkPositive(add, "receivers.otlp.maxConcurrentRequests", c.Receivers.OTLP.MaxConcurrentRequests)

	checkPositive(add, "conversion.maxStreams", c.Conversion.MaxStreams)
	checkPositiveDuration(add, "conversion.maxStale", c.Conversion.MaxStale)
	checkPositiveDuration(add, "conversion.interval", c.Conversion.Interval)
	if c.Conversion.MaxStale.Duration > 0 && c.Conversion.MaxStale.Duration < c.Conversion.Interval.Duration {
		add("conversion.maxStale", "%s is shorter than conversion.interval %s: streams would be forgotten between emits",
			c.Conversion.MaxStale, c.Conversion.Interval)
	}
	switch c.Conversion.Writers {
	case WritersShared, WritersSingle:
	default:
		add("conversion.writers", "%q is not one of %q, %q", c.Conversion.Writers, WritersShared, WritersSingle)
	}

	checkPositiveDuration(add, "state.checkpointInterval", c.State.CheckpointInterval)

	e := c.Exporters
	if e.PrometheusRemoteWrite == nil && e.OTLP == nil && e.Prometheus == nil {
		add("exporters", "at least one of prometheusRemoteWrite, otlp, prometheus must be set")
	}
	if rw := e.PrometheusRemoteWrite; rw != nil {
		const p = "exporters.prometheusRemoteWrite"
		if u, err := url.Parse(rw.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add(p+".endpoint", "%q is not an http or https URL", rw.Endpoint)
		}
		if rw.SigV4 != nil && rw.SigV4.Region == "" {
			add(p+".sigv4.region", "must be set: the AWS region of the workspace is never guessed")
		}
		auths := 0
		for _, set := range []bool{rw.SigV4 != nil, rw.BasicAuth != nil, rw.BearerTokenFile != ""} {
			if set {
				auths++
			}
		}
		if auths > 1 {
			add(p, "sigv4, basicAuth and bearerTokenFile are mutually exclusive")
		}
		if rw.BasicAuth != nil {
			if rw.BasicAuth.Username == "" {
				add(p+".basicAuth.username", "must be set")
			}
			if rw.BasicAuth.PasswordFile == "" {
				add(p+".basicAuth.passwordFile", "must be set")
			}
		}
		checkHeaders(add, p+".headers", rw.Headers)
		checkTLS(add, p+".tls", rw.TLS)
		checkPositiveDuration(add, p+".timeout", rw.Timeout)
		checkPositive(add, p+".queueSize", rw.QueueSize)
		checkRetry(add, p+".retry", rw.Retry)
		for name := range rw.ExternalLabels {
			if !validLabelName(name) {
				add(p+".externalLabels", "%q is not a valid Prometheus label name", name)
			}
		}
	}
	if o := e.OTLP; o != nil {
		const p = "exporters.otlp"
		if _, _, err := net.SplitHostPort(o.Endpoint); err != nil || strings.Contains(o.Endpoint, "://") {
			add(p+".endpoint", "%q is not host:port", o.Endpoint)
		}
		if o.Insecure && o.TLS != nil {
			add(p, "insecure and tls are mutually exclusive")
		}
		if o.Compression != "gzip" && o.Compression != "none" {
			add(p+".compression", "%q is not one of \"gzip\", \"none\"", o.Compression)
		}
		checkHeaders(add, p+".headers", o.Headers)
		checkTLS(add, p+".tls", o.TLS)
		checkPositiveDuration(add, p+".timeout", o.Timeout)
		checkPositive(add, p+".queueSize", o.QueueSize)
		checkRetry(add, p+".retry", o.Retry)
	}
	if pe := e.Prometheus; pe != nil {
		checkListen(add, "exporters.prometheus.endpoint", pe.Endpoint)
	}

	if h := c.Handoff; h != nil {
		checkHandoff(add, h)
	}

	checkListen(add, "telemetry.endpoint", c.Telemetry.Endpoint)
	switch c.Telemetry.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		add("telemetry.logLevel", "%q is not one of debug, info, warn, error", c.Telemetry.LogLevel)
	}
	switch c.Telemetry.LogFormat {
	case "json", "text":
	default:
		add("telemetry.logFormat", "%q is not one of json, text", c.Telemetry.LogFormat)
	}
	return errors.Join(errs...)
}

// Parse decodes a configuration file strictly (an unknown field is an
// error), applies defaults and validates the result.
func Parse(data []byte) (Config, error) {
	c, err := Decode(data)
	if err != nil {
		return Config{}, err
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("invalid worker configuration:\n%w", err)
	}
	return c, nil
}

// Decode decodes a configuration file strictly (an unknown field is an
// error) without applying defaults or validating, so that a caller can apply
// overrides (flags, environment) before ApplyDefaults and Validate.
func Decode(data []byte) (Config, error) {
	var c Config
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return Config{}, fmt.Errorf("decoding worker configuration: %w", err)
	}
	return c, nil
}

// Load reads and parses the configuration file at path.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("reading worker configuration: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Marshal encodes the configuration as YAML with stable key order.
func Marshal(c Config) ([]byte, error) {
	out, err := yaml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encoding worker configuration: %w", err)
	}
	return out, nil
}

// Duration is a time.Duration written as a Go duration string ("30s").
type Duration struct {
	time.Duration
}

// D wraps a time.Duration.
func D(d time.Duration) Duration { return Duration{d} }

// MarshalJSON writes the duration as a string such as "1m30s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(d.String())
}

// UnmarshalJSON reads a duration string such as "30s" or "1m".
func (d *Duration) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		d.Duration = 0
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"30s\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: %w", s, err)
	}
	d.Duration = v
	return nil
}

type addFunc func(field, format string, args ...any)

func checkListen(add addFunc, field, endpoint string) {
	if _, port, err := net.SplitHostPort(endpoint); err != nil {
		add(field, "%q is not a host:port listen address", endpoint)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		add(field, "port %q is not a number from 0 to 65535", port)
	}
}

func checkHandoff(add addFunc, h *Handoff) {
	switch h.RoutingKey {
	case "streamID", "resource", "service":
	case "attributes":
		if len(h.RoutingAttributes) == 0 {
			add("handoff.routingAttributes", "routing key attributes needs at least one attribute")
		}
	default:
		add("handoff.routingKey", "%q is not one of streamID, attributes, resource, service", h.RoutingKey)
	}
	m := h.Membership
	switch {
	case m.ConfigMap == nil && m.File == "":
		add("handoff.membership", "set configMap or file")
	case m.ConfigMap != nil && m.File != "":
		add("handoff.membership", "set only one of configMap and file")
	case m.ConfigMap != nil && (m.ConfigMap.Namespace == "" || m.ConfigMap.Name == "" || m.ConfigMap.Key == ""):
		add("handoff.membership.configMap", "namespace, name and key are required")
	case m.File != "":
		checkPositiveDuration(add, "handoff.membership.pollInterval", m.PollInterval)
	}
	checkListen(add, "handoff.peer.endpoint", h.Peer.Endpoint)
	if h.Peer.TokenFile == "" {
		add("handoff.peer.tokenFile", "is required: peers are refused without the pipeline's peer token")
	}
}

func checkPositive(add addFunc, field string, v int) {
	if v <= 0 {
		add(field, "must be positive, got %d", v)
	}
}

func checkPositiveDuration(add addFunc, field string, d Duration) {
	if d.Duration <= 0 {
		add(field, "must be a positive duration, got %s", d)
	}
}

func checkRetry(add addFunc, field string, r Retry) {
	checkPositiveDuration(add, field+".initialInterval", r.InitialInterval)
	checkPositiveDuration(add, field+".maxInterval", r.MaxInterval)
	checkPositive(add, field+".maxAttempts", r.MaxAttempts)
	if r.MaxInterval.Duration > 0 && r.MaxInterval.Duration < r.InitialInterval.Duration {
		add(field+".maxInterval", "%s is shorter than initialInterval %s", r.MaxInterval, r.InitialInterval)
	}
}

func checkHeaders(add addFunc, field string, headers []Header) {
	for i, h := range headers {
		f := fmt.Sprintf("%s[%d]", field, i)
		if h.Name == "" {
			add(f+".name", "must be set")
		}
		n := 0
		for _, set := range []bool{h.Value != "", h.ValueFile != "", h.ValueEnv != ""} {
			if set {
				n++
			}
		}
		if n != 1 {
			add(f, "exactly one of value, valueFile, valueEnv must be set")
		}
	}
}

func checkTLS(add addFunc, field string, t *TLS) {
	if t == nil {
		return
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		add(field, "certFile and keyFile must be set together")
	}
}

// validLabelName follows the Prometheus label name rule [a-zA-Z_][a-zA-Z0-9_]*.
func validLabelName(name string) bool {
	if name == "" {
		return false
	}
	for i, r := range name {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func setString(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

func setInt(p *int, v int) {
	if *p == 0 {
		*p = v
	}
}

func setDuration(p *Duration, v time.Duration) {
	if p.Duration == 0 {
		p.Duration = v
	}
}
