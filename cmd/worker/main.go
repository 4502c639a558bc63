// Command worker is the DeltaPipeline data plane: it receives delta OTLP
// metrics, keeps each stream's running total and exports cumulative series.
//
// It reads one YAML configuration file (the one the operator renders into
// the worker ConfigMap; see docs/worker-config.md) and accepts a few flag or
// environment overrides of common fields. docs/worker.md describes running it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/deltapipeline/deltapipeline/internal/telemetry"
	"github.com/deltapipeline/deltapipeline/internal/version"
	"github.com/deltapipeline/deltapipeline/internal/worker"
	"github.com/deltapipeline/deltapipeline/internal/workerconfig"
)

// Exit codes: a usage or configuration error is told apart from a failure
// while running, so that a crash-looping pod's status says which it is.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	// After the first signal, a second one kills the process the default way
	// instead of waiting for the graceful shutdown to finish.
	go func() { <-ctx.Done(); stop() }()
	os.Exit(run(ctx, os.Args[1:], environment{
		stdout:     os.Stdout,
		stderr:     os.Stderr,
		getenv:     os.Getenv,
		tuneMemory: true,
	}))
}

// environment is what run takes from the process, so that tests can run the
// whole command in-process.
type environment struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// started, when set, is told the worker once it is built and its
	// listeners are bound (tests learn the addresses of ports chosen by the
	// kernel this way).
	started func(*worker.Worker)
	// tuneMemory runs worker.MemoryPolicy, which changes settings of the
	// whole Go runtime; in-process tests leave it off.
	tuneMemory bool
}

// overrides are the fields settable by flag or environment variable. A flag
// wins over its environment variable, which wins over the file.
type overrides struct {
	configPath        string
	logLevel          string
	logFormat         string
	stateDirectory    string
	telemetryEndpoint string
	shutdownTimeout   time.Duration
	gcHeadroomMiB     int
	cpuProfile        string
	validateOnly      bool
	printVersion      bool
}

// envPrefix starts every environment variable the worker reads.
const envPrefix = "DELTAPIPELINE_"

func parseFlags(args []string, env environment) (overrides, error) {
	var o overrides
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.stderr, "Usage: worker --config <file> [flags]\n\n"+
			"Converts delta OTLP metrics to cumulative series. Every flag except --version and --validate\n"+
			"can also be set with the environment variable shown; the flag wins.\n\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.configPath, "config", "", "path of the worker configuration file (required; env "+envPrefix+"CONFIG)")
	fs.StringVar(&o.logLevel, "log-level", "", "override telemetry.logLevel: debug, info, warn, error (env "+envPrefix+"LOG_LEVEL)")
	fs.StringVar(&o.logFormat, "log-format", "", "override telemetry.logFormat: json, text (env "+envPrefix+"LOG_FORMAT)")
	fs.StringVar(&o.stateDirectory, "state-directory", "", "override state.directory (env "+envPrefix+"STATE_DIRECTORY)")
	fs.StringVar(&o.telemetryEndpoint, "telemetry-endpoint", "", "override telemetry.endpoint, host:port (env "+envPrefix+"TELEMETRY_ENDPOINT)")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 0,
		fmt.Sprintf("bound on the graceful shutdown, flush included (default %s; env %sSHUTDOWN_TIMEOUT)", worker.DefaultShutdownTimeout, envPrefix))
	fs.IntVar(&o.gcHeadroomMiB, "gc-headroom-mib", worker.DefaultGCHeadroom>>20,
		"garbage in MiB the Go collector may let pile up above the live heap; 0 keeps Go's default, as does setting GOGC (env "+envPrefix+"GC_HEADROOM_MIB)")
	fs.StringVar(&o.cpuProfile, "cpu-profile", "", "write a pprof CPU profile of the whole run to this file, for go tool pprof (env "+envPrefix+"CPU_PROFILE)")
	fs.BoolVar(&o.validateOnly, "validate", false, "load and validate the configuration, print the effective configuration and exit")
	fs.BoolVar(&o.printVersion, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q: every setting is a flag or lives in the --config file", fs.Args())
	}

	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	fromEnv := func(flagName string, dst *string) {
		if set[flagName] {
			return
		}
		*dst = env.getenv(envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_")))
	}
	fromEnv("config", &o.configPath)
	fromEnv("log-level", &o.logLevel)
	fromEnv("log-format", &o.logFormat)
	fromEnv("state-directory", &o.stateDirectory)
	fromEnv("telemetry-endpoint", &o.telemetryEndpoint)
	fromEnv("cpu-profile", &o.cpuProfile)
	if !set["shutdown-timeout"] {
		if v := env.getenv(envPrefix + "SHUTDOWN_TIMEOUT"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return o, fmt.Errorf("%sSHUTDOWN_TIMEOUT: %q is not a positive duration such as \"25s\"", envPrefix, v)
			}
			o.shutdownTimeout = d
		}
	}
	if !set["gc-headroom-mib"] {
		if v := env.getenv(envPrefix + "GC_HEADROOM_MIB"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return o, fmt.Errorf("%sGC_HEADROOM_MIB: %q is not a whole number of MiB", envPrefix, v)
			}
			o.gcHeadroomMiB = n
		}
	}
	if o.gcHeadroomMiB < 0 {
		return o, fmt.Errorf("--gc-headroom-mib: %d is negative", o.gcHeadroomMiB)
	}
	if o.shutdownTimeout < 0 {
		return o, fmt.Errorf("--shutdown-timeout: %s is negative", o.shutdownTimeout)
	}
	return o, nil
}

// loadConfig reads the file, applies the overrides, then defaults, then
// validates, so that an override can repair a field the file got wrong and
// every error names the field at fault.
func loadConfig(o overrides) (workerconfig.Config, error) {
	if o.configPath == "" {
		return workerconfig.Config{}, errors.New("--config (or " + envPrefix + "CONFIG) is required: the path of the worker configuration file")
	}
	data, err := os.ReadFile(o.configPath)
	if err != nil {
		return workerconfig.Config{}, fmt.Errorf("reading worker configuration: %w", err)
	}
	cfg, err := workerconfig.Decode(data)
	if err != nil {
		return workerconfig.Config{}, fmt.Errorf("%s: %w", o.configPath, err)
	}
	overrideString(&cfg.Telemetry.LogLevel, o.logLevel)
	overrideString(&cfg.Telemetry.LogFormat, o.logFormat)
	overrideString(&cfg.State.Directory, o.stateDirectory)
	overrideString(&cfg.Telemetry.Endpoint, o.telemetryEndpoint)
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		return workerconfig.Config{}, fmt.Errorf("%s: invalid worker configuration:\n%w", o.configPath, err)
	}
	return cfg, nil
}

func overrideString(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

func run(ctx context.Context, args []string, env environment) int {
	o, err := parseFlags(args, env)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(env.stderr, "worker: %v\n", err)
		return exitUsage
	}
	if o.printVersion {
		fmt.Fprintf(env.stdout, "deltapipeline-worker %s\n", version.Version)
		return exitOK
	}
	cfg, err := loadConfig(o)
	if err != nil {
		fmt.Fprintf(env.stderr, "worker: %v\n", err)
		return exitUsage
	}
	if o.validateOnly {
		out, err := workerconfig.Marshal(cfg)
		if err != nil {
			fmt.Fprintf(env.stderr, "worker: %v\n", err)
			return exitRuntime
		}
		_, _ = env.stdout.Write(out)
		return exitOK
	}
	logger, err := telemetry.NewLogger(env.stderr, cfg.Telemetry.LogLevel, cfg.Telemetry.LogFormat)
	if err != nil {
		fmt.Fprintf(env.stderr, "worker: %v\n", err)
		return exitUsage
	}
	logger.Info("starting worker", "version", version.Version, "config", o.configPath)
	if o.cpuProfile != "" {
		stopProfile, err := startCPUProfile(o.cpuProfile)
		if err != nil {
			logger.Error("worker failed to start", "error", err)
			return exitRuntime
		}
		defer func() {
			if err := stopProfile(); err != nil {
				logger.Error("writing the CPU profile", "file", o.cpuProfile, "error", err)
			}
		}()
	}
	if env.tuneMemory {
		policy := worker.DefaultMemoryPolicy(env.getenv, logger)
		policy.GCHeadroom = uint64(o.gcHeadroomMiB) << 20
		go policy.Run(ctx)
	}

	// New opens the state store itself when state.directory is set: the
	// store journals, restores, checkpoints and reports its health.
	w, err := worker.New(ctx, cfg, worker.Options{Logger: logger, ShutdownTimeout: o.shutdownTimeout})
	if err != nil {
		logger.Error("worker failed to start", "error", err)
		return exitRuntime
	}
	if env.started != nil {
		env.started(w)
	}
	if err := w.Run(ctx); err != nil {
		logger.Error("worker stopped with an error", "error", err)
		return exitRuntime
	}
	logger.Info("worker stopped")
	return exitOK
}

// startCPUProfile profiles the process into path until the returned function
// is called: the benchmarks use it to show where a worker under load spends
// its time (docs/benchmarks.md).
func startCPUProfile(path string) (stop func() error, err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("creating the CPU profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("starting the CPU profile %s: %w", path, err)
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}
