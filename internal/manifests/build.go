package manifests

import (
	"reflect"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
)

// Gateway is every object of the gateway tier. Optional objects are nil when
// their feature is off, which tells the controller to delete them.
type Gateway struct {
	ConfigMap      *corev1.ConfigMap
	Deployment     *appsv1.Deployment
	Service        *corev1.Service
	PDB            *policyv1.PodDisruptionBudget
	ServiceAccount *corev1.ServiceAccount
	Role           *rbacv1.Role
	RoleBinding    *rbacv1.RoleBinding
	HPA            *autoscalingv2.HorizontalPodAutoscaler
	NetworkPolicy  *networkingv1.NetworkPolicy
	// ClientTokens is set when spec.gateway.auth.bearerTokens is.
	ClientTokens *corev1.Secret
}

// Objects are the gateway tier's objects that are on, in no particular
// order; an object of the tier that is not among them is pruned.
func (g Gateway) Objects() []client.Object {
	return present(g.ConfigMap, g.ClientTokens, g.Deployment, g.Service, g.PDB, g.ServiceAccount, g.Role, g.RoleBinding, g.HPA, g.NetworkPolicy)
}

// Worker is every object of the worker tier.
type Worker struct {
	ConfigMap      *corev1.ConfigMap
	StatefulSet    *appsv1.StatefulSet
	Service        *corev1.Service
	PDB            *policyv1.PodDisruptionBudget
	ServiceAccount *corev1.ServiceAccount
	NetworkPolicy  *networkingv1.NetworkPolicy
	// HPA is set with spec.worker.autoscaling; it scales the pipeline, not
	// the StatefulSet.
	HPA *autoscalingv2.HorizontalPodAutoscaler
	// Membership is the ring the gateways' router follows and the workers
	// hand streams over by; nil with the loadBalancing router, as are the
	// peer token and the Role that lets workers watch the membership.
	Membership  *corev1.ConfigMap
	PeerToken   *corev1.Secret
	Role        *rbacv1.Role
	RoleBinding *rbacv1.RoleBinding
}

// Objects are the worker tier's objects, in no particular order.
func (w Worker) Objects() []client.Object {
	return present(w.ConfigMap, w.PeerToken, w.StatefulSet, w.Service, w.PDB, w.ServiceAccount, w.NetworkPolicy, w.HPA, w.Membership, w.Role, w.RoleBinding)
}

// present drops the nil objects of features that are off. The arguments are
// typed pointers, so a nil one is a non-nil interface and needs reflection.
func present(objects ...client.Object) []client.Object {
	out := make([]client.Object, 0, len(objects))
	for _, o := range objects {
		if o != nil && !reflect.ValueOf(o).IsNil() {
			out = append(out, o)
		}
	}
	return out
}

// Credentials are the secret values the builders need, which the controller
// reads from the cluster: builders stay pure, and a value is never invented
// on a rebuild.
type Credentials struct {
	// ClientTokens are the values of spec.gateway.auth.bearerTokens, in spec order.
	ClientTokens []string
	// WorkerToken is the gateway-to-worker token, when
	// spec.worker.authentication is on.
	WorkerToken string
	// PeerToken is the token workers present to each other, when they hand
	// streams over.
	PeerToken string
}

// BuildShared builds the objects both tiers mount, applied before either:
// the gateway-to-worker token Secret when it is on.
func BuildShared(p *v1alpha1.DeltaPipeline, creds Credentials) []client.Object {
	return present(WorkerTokenSecret(p, creds.WorkerToken))
}

// BuildGateway builds the gateway tier; it fails only on an invalid
// spec.gateway.config or spec.gateway.auth.
func BuildGateway(p *v1alpha1.DeltaPipeline, opts Options, creds Credentials) (Gateway, error) {
	cm, err := GatewayConfigMap(p)
	if err != nil {
		return Gateway{}, err
	}
	// The collector reads its configuration and the worker token (through
	// ${file:...}) only when it starts, so both roll the pods; the TLS files
	// and client tokens it re-reads by itself are left out.
	configHash := ContentHash([]byte(cm.Data[GatewayConfigFile]), []byte(creds.WorkerToken))
	g := Gateway{
		ConfigMap:      cm,
		ClientTokens:   GatewayClientTokensSecret(p, creds.ClientTokens),
		Deployment:     GatewayDeployment(p, opts, configHash),
		Service:        GatewayService(p),
		PDB:            GatewayPodDisruptionBudget(p),
		ServiceAccount: GatewayServiceAccount(p),
		HPA:            GatewayHorizontalPodAutoscaler(p),
	}
	if NetworkPoliciesEnabled(p) {
		if g.NetworkPolicy, err = GatewayNetworkPolicy(p); err != nil {
			return Gateway{}, err
		}
	}
	if GatewayReadsKubernetesAPI(p) {
		g.Role = GatewayResolverRole(p)
		g.RoleBinding = GatewayResolverRoleBinding(p)
	}
	return g, nil
}

// BuildWorker builds the worker tier; it fails when the worker configuration
// would be invalid. plan is the ring the controller decided to run (see
// PlanRing): the membership it publishes and the StatefulSet's size.
func BuildWorker(p *v1alpha1.DeltaPipeline, opts Options, creds Credentials, plan RingPlan) (Worker, error) {
	cm, err := WorkerConfigMap(p)
	if err != nil {
		return Worker{}, err
	}
	replicas := WorkerReplicas(p)
	if HandoffEnabled(p) {
		replicas = plan.StatefulSetReplicas(p)
	}
	w := Worker{
		ConfigMap:      cm,
		StatefulSet:    WorkerStatefulSet(p, opts, ContentHash([]byte(cm.Data[WorkerConfigKey])), replicas),
		Service:        WorkerHeadlessService(p),
		PDB:            WorkerPodDisruptionBudget(p),
		ServiceAccount: WorkerServiceAccount(p),
		PeerToken:      PeerTokenSecret(p, creds.PeerToken),
		Role:           WorkerMembershipRole(p),
		RoleBinding:    WorkerMembershipRoleBinding(p),
		HPA:            WorkerHorizontalPodAutoscaler(p),
	}
	if NetworkPoliciesEnabled(p) {
		w.NetworkPolicy = WorkerNetworkPolicy(p)
	}
	if HandoffEnabled(p) {
		if w.Membership, err = MembershipConfigMap(p, plan); err != nil {
			return Worker{}, err
		}
	}
	return w, nil
}
