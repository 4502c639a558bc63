package manifests

import (
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
)

// GatewayResolverRole grants the gateways exactly what they read to find the
// workers: the membership ConfigMap for DeltaPipeline's router, or the
// endpoints of the worker headless Service for the k8s resolver of the
// load_balancing exporter.
func GatewayResolverRole(p *v1alpha1.DeltaPipeline) *rbacv1.Role {
	read := []string{"get", "list", "watch"}
	rules := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{naming.MembershipConfigMap(p)}, Verbs: read},
	}
	if UsesLoadBalancing(p) {
		rules = []rbacv1.PolicyRule{
			{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: read},
			{APIGroups: []string{""}, Resources: []string{"endpoints"}, Verbs: read},
		}
	}
	return &rbacv1.Role{
		ObjectMeta: objectMeta(p, naming.GatewayResolverRole(p), naming.ComponentGateway),
		Rules:      rules,
	}
}

// GatewayResolverRoleBinding gives the gateway ServiceAccount the resolver Role.
func GatewayResolverRoleBinding(p *v1alpha1.DeltaPipeline) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		ObjectMeta: objectMeta(p, naming.GatewayResolverRoleBinding(p), naming.ComponentGateway),
		RoleRef: rbacv1.RoleRef{
			APIGroup: rbacv1.GroupName,
			Kind:     "Role",
			Name:     naming.GatewayResolverRole(p),
		},
		Subjects: []rbacv1.Subject{{
			Kind:      rbacv1.ServiceAccountKind,
			Name:      naming.GatewayServiceAccount(p),
			Namespace: p.Namespace,
		}},
	}
}
