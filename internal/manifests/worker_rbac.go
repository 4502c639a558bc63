package manifests

import (
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
)

// WorkerMembershipRole grants the workers exactly what they read to know
// which streams are theirs: the membership ConfigMap. Nil when the workers
// do not hand streams over (the loadBalancing router).
func WorkerMembershipRole(p *v1alpha1.DeltaPipeline) *rbacv1.Role {
	if !HandoffEnabled(p) {
		return nil
	}
	return &rbacv1.Role{
		ObjectMeta: objectMeta(p, naming.WorkerMembershipRole(p), naming.ComponentWorker),
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{""}, Resources: []string{"configmaps"},
			ResourceNames: []string{naming.MembershipConfigMap(p)}, Verbs: []string{"get", "list", "watch"},
		}},
	}
}

// WorkerMembershipRoleBinding gives the worker ServiceAccount the Role.
func WorkerMembershipRoleBinding(p *v1alpha1.DeltaPipeline) *rbacv1.RoleBinding {
	if !HandoffEnabled(p) {
		return nil
	}
	return &rbacv1.RoleBinding{
		ObjectMeta: objectMeta(p, naming.WorkerMembershipRoleBinding(p), naming.ComponentWorker),
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: naming.WorkerMembershipRole(p)},
		Subjects: []rbacv1.Subject{{
			Kind: rbacv1.ServiceAccountKind, Name: naming.WorkerServiceAccount(p), Namespace: p.Namespace,
		}},
	}
}
