package controllers

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/manifests"
	"github.com/deltapipeline/deltapipeline/internal/naming"
)

// workerTokenBytes is the entropy of a generated token.
const workerTokenBytes = 32

// gatewayReferences checks the Secrets the gateway reads (spec.gateway.tls,
// spec.gateway.auth.bearerTokens) and returns the client tokens. The
// condition is False, naming the field, the Secret and what is wrong, at the
// first bad one; the gateway tier then keeps its current configuration, as a
// collector whose certificate or token file is missing would not start.
func (r *DeltaPipelineReconciler) gatewayReferences(ctx context.Context, p *v1alpha1.DeltaPipeline) ([]string, metav1.Condition, error) {
	resolved := metav1.Condition{Type: v1alpha1.ConditionReferencesResolved, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonResolved, Message: "every referenced Secret and ConfigMap key exists"}
	if t := p.Spec.Gateway.TLS; t != nil {
		const field = "spec.gateway.tls.secretName"
		s, c, err := r.readSecret(ctx, p, t.SecretName, field)
		if err != nil || c != nil {
			return nil, derefCondition(c), err
		}
		if s.Type != corev1.SecretTypeTLS {
			return nil, missingReference(v1alpha1.ReasonSecretTypeMismatch, fmt.Sprintf("Secret %q referenced by %s has type %q, want %q (tls.crt and tls.key, as cert-manager writes them)",
				t.SecretName, field, s.Type, corev1.SecretTypeTLS)), nil
		}
		for _, key := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey} {
			if len(s.Data[key]) == 0 {
				return nil, missingReference(v1alpha1.ReasonSecretKeyNotFound, fmt.Sprintf("Secret %q referenced by %s has no key %q or it is empty", t.SecretName, field, key)), nil
			}
		}
		if _, err := tls.X509KeyPair(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey]); err != nil {
			return nil, missingReference(v1alpha1.ReasonInvalidTLSCertificate, fmt.Sprintf("Secret %q referenced by %s: tls.crt and tls.key are not a PEM certificate and its private key: %v", t.SecretName, field, err)), nil
		}
	}
	var tokens []string
	if a := p.Spec.Gateway.Auth; a != nil {
		for i, ref := range a.BearerTokens {
			field := fmt.Sprintf("spec.gateway.auth.bearerTokens[%d]", i)
			s, c, err := r.readSecret(ctx, p, ref.Name, field)
			if err != nil || c != nil {
				return nil, derefCondition(c), err
			}
			value, ok := s.Data[ref.Key]
			if !ok {
				return nil, missingReference(v1alpha1.ReasonSecretKeyNotFound, fmt.Sprintf("Secret %q referenced by %s has no key %q", ref.Name, field, ref.Key)), nil
			}
			token, err := bearerToken(value)
			if err != nil {
				return nil, missingReference(v1alpha1.ReasonInvalidBearerToken, fmt.Sprintf("key %q of Secret %q referenced by %s: %v", ref.Key, ref.Name, field, err)), nil
			}
			tokens = append(tokens, token)
		}
	}
	return tokens, resolved, nil
}

// bearerToken is the token of a Secret value, with surrounding whitespace
// (a trailing newline from `kubectl create secret --from-file`) removed. The
// bearertokenauth extension reads one token per line and only its first
// word, so a value with inner whitespace would silently accept something
// else than what the Secret holds: it is refused.
func bearerToken(value []byte) (string, error) {
	token := strings.TrimSpace(string(value))
	if token == "" {
		return "", fmt.Errorf("the token is empty")
	}
	if strings.ContainsFunc(token, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }) {
		return "", fmt.Errorf("the token contains whitespace; a bearer token is one word")
	}
	return token, nil
}

// readSecret reads a referenced Secret from the API server. A missing one is
// a condition, not an error.
func (r *DeltaPipelineReconciler) readSecret(ctx context.Context, p *v1alpha1.DeltaPipeline, name, field string) (*corev1.Secret, *metav1.Condition, error) {
	var s corev1.Secret
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: name}, &s)
	if apierrors.IsNotFound(err) {
		c := missingReference(v1alpha1.ReasonSecretNotFound, fmt.Sprintf("Secret %q referenced by %s not found in namespace %s", name, field, p.Namespace))
		return nil, &c, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading Secret %s/%s referenced by %s: %w", p.Namespace, name, field, err)
	}
	return &s, nil, nil
}

func derefCondition(c *metav1.Condition) metav1.Condition {
	if c == nil {
		return metav1.Condition{}
	}
	return *c
}

// workerToken is the gateway-to-worker token: the one the pipeline's Secret
// holds, or a new random one when there is none yet (or it was emptied), so
// reconciling never changes it. Empty when spec.worker.authentication is off.
func (r *DeltaPipelineReconciler) workerToken(ctx context.Context, p *v1alpha1.DeltaPipeline) (string, error) {
	if !manifests.WorkerAuthenticationEnabled(p) {
		return "", nil
	}
	return r.storedOrNewToken(ctx, p, naming.WorkerTokenSecret(p), manifests.WorkerTokenFile, "the gateway-to-worker token")
}

// storedOrNewToken is the token key of the pipeline's Secret name holds,
// or a new random one when there is none yet (or it was emptied).
func (r *DeltaPipelineReconciler) storedOrNewToken(ctx context.Context, p *v1alpha1.DeltaPipeline, name, key, what string) (string, error) {
	var s corev1.Secret
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: name}, &s)
	switch {
	case err == nil && metav1.IsControlledBy(&s, p):
		if token, err := bearerToken(s.Data[key]); err == nil {
			return token, nil
		}
	case err != nil && !apierrors.IsNotFound(err):
		return "", fmt.Errorf("reading the Secret %s/%s of %s: %w", p.Namespace, name, what, err)
	}
	// A Secret of that name that the pipeline does not control is left
	// alone: applying the new one fails and names its controller.
	raw := make([]byte, workerTokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("generating %s: %w", what, err)
	}
	return base64.RawURLEncoding.EncodeToString(raw), nil
}
