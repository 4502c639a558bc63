package workerconfig

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseAppliesDefaults(t *testing.T) {
	c, err := Parse([]byte("exporters:\n  prometheus: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, check := range []struct {
		field     string
		got, want any
	}{
		{"receivers.otlp.grpc.endpoint", c.Receivers.OTLP.GRPC.Endpoint, ":4317"},
		{"receivers.otlp.http.endpoint", c.Receivers.OTLP.HTTP.Endpoint, ":4318"},
		{"receivers.otlp.grpc.maxRecvMsgSizeMiB", c.Receivers.OTLP.GRPC.MaxRecvMsgSizeMiB, 16},
		{"receivers.otlp.maxConcurrentRequests", c.Receivers.OTLP.MaxConcurrentRequests, 64},
		{"conversion.maxStreams", c.Conversion.MaxStreams, 1_000_000},
		{"conversion.maxStale", c.Conversion.MaxStale.Duration, 10 * time.Minute},
		{"conversion.interval", c.Conversion.Interval.Duration, 30 * time.Second},
		{"conversion.writers", c.Conversion.Writers, WritersShared},
		{"state.directory", c.State.Directory, ""},
		{"state.checkpointInterval", c.State.CheckpointInterval.Duration, time.Minute},
		{"exporters.prometheus.endpoint", c.Exporters.Prometheus.Endpoint, ":9464"},
		{"telemetry.endpoint", c.Telemetry.Endpoint, ":8888"},
		{"telemetry.logLevel", c.Telemetry.LogLevel, "info"},
		{"telemetry.logFormat", c.Telemetry.LogFormat, "json"},
	} {
		if check.got != check.want {
			t.Errorf("%s = %v, want %v", check.field, check.got, check.want)
		}
	}
}

func TestValidateNamesEveryInvalidField(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want []string
	}{
		{"no exporter", "{}", []string{"exporters: at least one of prometheusRemoteWrite, otlp, prometheus must be set"}},
		{"negative limits", "exporters: {prometheus: {}}\nconversion: {maxStreams: -1}\nreceivers: {otlp: {maxConcurrentRequests: -2}}",
			[]string{"conversion.maxStreams: must be positive, got -1", "receivers.otlp.maxConcurrentRequests: must be positive, got -2"}},
		{"stale shorter than interval", "exporters: {prometheus: {}}\nconversion: {maxStale: 10s, interval: 1m}",
			[]string{"conversion.maxStale: 10s is shorter than conversion.interval 1m0s"}},
		{"unknown writers", "exporters: {prometheus: {}}\nconversion: {writers: many}", []string{`conversion.writers: "many" is not one of`}},
		{"bad listen address", "exporters: {prometheus: {endpoint: localhost}}", []string{`exporters.prometheus.endpoint: "localhost" is not a host:port listen address`}},
		{"remote write without region", "exporters: {prometheusRemoteWrite: {endpoint: 'https://aps.example/api/v1/remote_write', sigv4: {}}}",
			[]string{"exporters.prometheusRemoteWrite.sigv4.region: must be set"}},
		{"remote write URL", "exporters: {prometheusRemoteWrite: {endpoint: 'ftp://x'}}", []string{`exporters.prometheusRemoteWrite.endpoint: "ftp://x" is not an http or https URL`}},
		{"two auth methods", "exporters: {prometheusRemoteWrite: {endpoint: 'https://x/w', bearerTokenFile: /t, basicAuth: {username: u, passwordFile: /p}}}",
			[]string{"exporters.prometheusRemoteWrite: sigv4, basicAuth and bearerTokenFile are mutually exclusive"}},
		{"header with two values", "exporters: {otlp: {endpoint: 'b:4317', headers: [{name: x, value: a, valueEnv: B}]}}",
			[]string{"exporters.otlp.headers[0]: exactly one of value, valueFile, valueEnv must be set"}},
		{"otlp endpoint with scheme", "exporters: {otlp: {endpoint: 'http://b:4317'}}", []string{`exporters.otlp.endpoint: "http://b:4317" is not host:port`}},
		{"external label name", "exporters: {prometheusRemoteWrite: {endpoint: 'https://x/w', externalLabels: {'9lives': x}}}",
			[]string{`exporters.prometheusRemoteWrite.externalLabels: "9lives" is not a valid Prometheus label name`}},
		{"retry bounds", "exporters: {otlp: {endpoint: 'b:1', retry: {initialInterval: 10s, maxInterval: 1s}}}",
			[]string{"exporters.otlp.retry.maxInterval: 1s is shorter than initialInterval 10s"}},
		{"log level", "exporters: {prometheus: {}}\ntelemetry: {logLevel: loud}", []string{`telemetry.logLevel: "loud" is not one of debug, info, warn, error`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q:\n%v", want, err)
				}
			}
		})
	}
}

func TestDecodeIsStrict(t *testing.T) {
	if _, err := Decode([]byte("conversion:\n  intervall: 10s\n")); err == nil || !strings.Contains(err.Error(), `unknown field "intervall"`) {
		t.Errorf("misspelt field: %v", err)
	}
	if _, err := Decode([]byte("conversion:\n  interval: 10\n")); err == nil || !strings.Contains(err.Error(), "duration must be a string") {
		t.Errorf("duration as a number: %v", err)
	}
	if _, err := Decode([]byte("conversion:\n  interval: soon\n")); err == nil || !strings.Contains(err.Error(), `invalid duration "soon"`) {
		t.Errorf("unparsable duration: %v", err)
	}
}

func TestMarshalRoundTrips(t *testing.T) {
	c, err := Parse([]byte("exporters:\n  otlp: {endpoint: 'backend:4317', insecure: true}\nconversion: {interval: 15s, writers: single}\n"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(out)
	if err != nil {
		t.Fatalf("marshalled configuration does not parse: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(again, c) {
		t.Errorf("round trip changed the configuration:\n%+v\n%+v", again, c)
	}
}
