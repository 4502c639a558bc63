package routerexporter

import (
	"context"
	"fmt"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
)

// typeStr is the exporter's type in collector configuration.
const typeStr = "deltapipeline_router"

// NewFactory returns the factory of the routing exporter.
func NewFactory() exporter.Factory {
	return exporter.NewFactory(component.MustNewType(typeStr),
		func() component.Config { return createDefaultConfig() },
		exporter.WithMetrics(createMetrics, component.StabilityLevelBeta))
}

func createMetrics(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Metrics, error) {
	c, ok := cfg.(*Config)
	if !ok {
		return nil, fmt.Errorf("%s: configuration of type %T", typeStr, cfg)
	}
	r, err := newRouter(c, set.Logger)
	if err != nil {
		return nil, err
	}
	return newExporter(ctx, set, c, r)
}

func newExporter(ctx context.Context, set exporter.Settings, cfg *Config, r *router) (exporter.Metrics, error) {
	return exporterhelper.NewMetrics(ctx, set, cfg, r.consume,
		// Splitting only reads the request: it encodes each worker's
		// share from it.
		exporterhelper.WithCapabilities(consumer.Capabilities{MutatesData: false}),
		exporterhelper.WithStart(func(ctx context.Context, host component.Host) error {
			tel, err := newTelemetry(set.MeterProvider, r)
			if err != nil {
				return err
			}
			return r.start(ctx, host, tel)
		}),
		exporterhelper.WithShutdown(r.stop),
	)
}
