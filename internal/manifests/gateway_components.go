package manifests

import (
	"fmt"
	"slices"
	"strings"
)

// GatewayDistribution lists the component types of DeltaPipeline's gateway
// image (cmd/gateway), which spec.gateway.config may use with the
// deltapipeline router. A test of cmd/gateway holds its factories to this
// list.
var GatewayDistribution = Components{
	Receivers:  []string{"otlp"},
	Processors: []string{"attributes", "batch", "filter", "memory_limiter", "resource", "transform"},
	Exporters:  []string{routerID},
	Extensions: []string{"bearertokenauth", "health_check", "oidc", "pprof"},
}

// Components are component types by kind.
type Components struct {
	Receivers, Processors, Exporters, Extensions []string
}

// checkAvailable reports a component of defined whose type (the part of
// its ID before "/") the distribution does not have.
func checkAvailable(field string, defined map[string]any, available []string) error {
	for id := range defined {
		typ, _, _ := strings.Cut(id, "/")
		if !slices.Contains(available, typ) {
			return fmt.Errorf("%s.%s: the DeltaPipeline gateway has no %q component (it has %s); "+
				"for other components use spec.gateway.router: loadBalancing with a contrib collector image",
				field, id, typ, strings.Join(available, ", "))
		}
	}
	return nil
}
