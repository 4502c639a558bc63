// Command gateway is DeltaPipeline's tier-1 collector: a distribution of the
// OpenTelemetry Collector built from upstream components (the OTLP receiver,
// the processors a pipeline may put in front of routing, the authentication
// extensions) and DeltaPipeline's routing exporter, which sends each stream
// to the worker that owns it by the ring the workers share.
package main

import (
	"fmt"
	"os"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/otelcol"

	"github.com/deltapipeline/deltapipeline/internal/version"
)

func main() {
	settings := otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{
			Command:     "gateway",
			Description: "DeltaPipeline gateway: OpenTelemetry Collector with the DeltaPipeline router",
			Version:     version.Version,
		},
		Factories: components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				ProviderFactories: []confmap.ProviderFactory{
					envprovider.NewFactory(),
					fileprovider.NewFactory(),
					yamlprovider.NewFactory(),
				},
				DefaultScheme: "env",
			},
		},
	}
	if err := otelcol.NewCommand(settings).Execute(); err != nil {
		fmt.Fprintf(os.Stderr, "gateway: %v\n", err)
		os.Exit(1)
	}
}
