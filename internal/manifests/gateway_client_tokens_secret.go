package manifests

import (
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
)

// GatewayClientTokensSecret gathers the tokens of
// spec.gateway.auth.bearerTokens, read by the controller from the user's
// Secrets, into the one file the gateway's bearertokenauth extension watches:
// one token per line, in spec order. It is nil unless bearer tokens are
// configured. Changing a user's Secret changes this Secret's data only; the
// gateway pods are not rolled (the extension re-reads the file).
func GatewayClientTokensSecret(p *v1alpha1.DeltaPipeline, tokens []string) *corev1.Secret {
	if clientAuthenticatorID(p) != clientBearerTokenAuthID {
		return nil
	}
	var b strings.Builder
	for _, t := range tokens {
		b.WriteString(t)
		b.WriteByte('\n')
	}
	return &corev1.Secret{
		ObjectMeta: objectMeta(p, naming.GatewayClientTokensSecret(p), naming.ComponentGateway),
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{GatewayClientTokensFile: []byte(b.String())},
	}
}
