package routerexporter

import (
	"errors"
	"fmt"
	"time"

	"github.com/deltapipeline/deltapipeline/internal/ring"
)

// Config is the exporter's configuration, as the operator renders it.
type Config struct {
	// RoutingKey is streamID, attributes, resource or service.
	RoutingKey string `mapstructure:"routing_key"`
	// RoutingAttributes are hashed in order when RoutingKey is attributes.
	RoutingAttributes []string `mapstructure:"routing_attributes"`
	// Membership is where the ring's members come from.
	Membership MembershipConfig `mapstructure:"membership"`
	// Timeout bounds one export call to a worker.
	Timeout time.Duration `mapstructure:"timeout"`
	// Compression of the gateway to worker leg: none or gzip.
	Compression string `mapstructure:"compression"`
	// BearerTokenFile, when set, holds the token sent to every worker as
	// "authorization: Bearer <token>"; it is re-read when it changes.
	BearerTokenFile string `mapstructure:"bearer_token_file"`
	// Queue bounds what waits for each worker.
	Queue QueueConfig `mapstructure:"queue"`
	// Retry bounds how long a request refused by a worker is retried.
	Retry RetryConfig `mapstructure:"retry"`
	// DrainTimeout bounds how long shutdown waits for the queues to empty.
	DrainTimeout time.Duration `mapstructure:"drain_timeout"`
}

// MembershipConfig names exactly one source of the ring's members.
type MembershipConfig struct {
	// ConfigMap is watched through the Kubernetes API with the pod's
	// service account: a change reaches the gateway within a second.
	ConfigMap *ConfigMapSource `mapstructure:"configmap"`
	// File is read again whenever it changes (checked every PollInterval).
	File string `mapstructure:"file"`
	// PollInterval of File.
	PollInterval time.Duration `mapstructure:"poll_interval"`
}

// ConfigMapSource is the ConfigMap the operator publishes the membership in.
type ConfigMapSource struct {
	Namespace string `mapstructure:"namespace"`
	Name      string `mapstructure:"name"`
	Key       string `mapstructure:"key"`
	// Kubeconfig is used instead of the in-cluster configuration when set.
	Kubeconfig string `mapstructure:"kubeconfig"`
}

// QueueConfig sizes the per-worker queues.
type QueueConfig struct {
	// Size is how many requests may wait for one worker; a request that
	// would need a full queue is refused as a whole, retryable.
	Size int `mapstructure:"size"`
	// MaxBatchPoints caps how many points one export call carries when
	// queued requests are sent together.
	MaxBatchPoints int `mapstructure:"max_batch_points"`
}

// RetryConfig is the backoff of retries to one worker.
type RetryConfig struct {
	InitialInterval time.Duration `mapstructure:"initial_interval"`
	MaxInterval     time.Duration `mapstructure:"max_interval"`
	MaxElapsedTime  time.Duration `mapstructure:"max_elapsed_time"`
}

const (
	compressionNone = "none"
	compressionGzip = "gzip"
)

func createDefaultConfig() *Config {
	return &Config{
		RoutingKey:   string(ring.KeyStreamID),
		Timeout:      10 * time.Second,
		Compression:  compressionNone,
		Membership:   MembershipConfig{PollInterval: time.Second},
		Queue:        QueueConfig{Size: 10_000, MaxBatchPoints: 8192},
		Retry:        RetryConfig{InitialInterval: time.Second, MaxInterval: 10 * time.Second, MaxElapsedTime: 180 * time.Second},
		DrainTimeout: 25 * time.Second,
	}
}

// Validate reports every problem of the configuration, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	if _, err := ring.NewKeyer(ring.KeyKind(c.RoutingKey), c.RoutingAttributes); err != nil {
		errs = append(errs, fmt.Errorf("routing_key: %w", err))
	}
	m := c.Membership
	switch {
	case m.ConfigMap == nil && m.File == "":
		errs = append(errs, errors.New("membership: set configmap or file"))
	case m.ConfigMap != nil && m.File != "":
		errs = append(errs, errors.New("membership: set only one of configmap and file"))
	case m.ConfigMap != nil && (m.ConfigMap.Namespace == "" || m.ConfigMap.Name == "" || m.ConfigMap.Key == ""):
		errs = append(errs, errors.New("membership.configmap: namespace, name and key are required"))
	case m.File != "" && m.PollInterval <= 0:
		errs = append(errs, errors.New("membership.poll_interval must be positive"))
	}
	if c.Timeout <= 0 {
		errs = append(errs, errors.New("timeout must be positive"))
	}
	if c.Compression != compressionNone && c.Compression != compressionGzip {
		errs = append(errs, fmt.Errorf("compression: %q is not none or gzip", c.Compression))
	}
	if c.Queue.Size <= 0 || c.Queue.MaxBatchPoints <= 0 {
		errs = append(errs, errors.New("queue.size and queue.max_batch_points must be positive"))
	}
	r := c.Retry
	if r.InitialInterval <= 0 || r.MaxInterval < r.InitialInterval || r.MaxElapsedTime < 0 {
		errs = append(errs, errors.New("retry: need 0 < initial_interval <= max_interval and max_elapsed_time >= 0"))
	}
	if c.DrainTimeout < 0 {
		errs = append(errs, errors.New("drain_timeout must not be negative"))
	}
	return errors.Join(errs...)
}
