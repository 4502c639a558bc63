package controllers

import (
	"context"
	"os"
	"path/filepath"
	"slices"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/yaml"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
	"github.com/deltapipeline/deltapipeline/internal/pipelinetest"
)

var _ = Describe("Pruning", func() {
	var (
		ctx context.Context
		ns  string
	)
	BeforeEach(func() {
		ctx = context.Background()
		ns = createNamespace(ctx)
	})

	It("deletes objects of owned kinds the pipeline controls but no longer builds, and leaves the same kinds owned by others alone", func() {
		p := createPipeline(ctx, pipelinetest.New("claude", ns))
		waitForObjects(ctx, p)

		leftoverConfigMap := controlledBy(p, &corev1.ConfigMap{}, "claude-gateway-previous", naming.ComponentGateway)
		leftoverService := controlledBy(p, &corev1.Service{Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "old", Port: 9000}}}}, "claude-worker-previous", naming.ComponentWorker)
		unlabelledRole := controlledBy(p, &rbacv1.Role{}, "claude-previous-role", "")
		// Same labels, same kinds, but the pipeline is not their controller.
		unowned := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "claude-gateway-notes", Namespace: ns, Labels: naming.Labels(p, naming.ComponentGateway)}}
		otherController := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{
				Name: "claude-gateway-mirror", Namespace: ns, Labels: naming.Labels(p, naming.ComponentGateway),
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "someone-else", UID: "0f0f0f0f-0000-4000-8000-000000000001", Controller: ptr.To(true)}},
			},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "mirror", Port: 9001}}},
		}
		for _, obj := range []client.Object{leftoverConfigMap, leftoverService, unlabelledRole, unowned, otherController} {
			Expect(k8sClient.Create(ctx, obj)).To(Succeed(), "creating %s %s", kindOf(obj), obj.GetName())
		}

		waitForDeletion(ctx, p, &corev1.ConfigMap{}, leftoverConfigMap.Name)
		waitForDeletion(ctx, p, &corev1.Service{}, leftoverService.Name)
		waitForDeletion(ctx, p, &rbacv1.Role{}, unlabelledRole.Name)
		Consistently(func() error {
			if _, err := fetch(ctx, p, &corev1.ConfigMap{}, unowned.Name); err != nil {
				return err
			}
			_, err := fetch(ctx, p, &corev1.Service{}, otherController.Name)
			return err
		}).Should(Succeed(), "objects the pipeline does not control are not pruned")
		waitForObjects(ctx, p)
		eventuallyWritesNothing(ctx, p)
	})

	It("keeps the objects of a tier it cannot build, and prunes them once it can", func() {
		const secretName, secretKey = "remote-write-token", "token"
		p := createPipeline(ctx, pipelinetest.New("claude", ns, pipelinetest.WithBearerTokenSecret(secretName, secretKey)))
		Eventually(condition(ctx, p, v1alpha1.ConditionReferencesResolved)).Should(haveCondition(ctx, p, metav1.ConditionFalse, v1alpha1.ReasonSecretNotFound))

		workerLeftover := controlledBy(p, &corev1.ConfigMap{}, "claude-worker-previous", naming.ComponentWorker)
		unlabelledLeftover := controlledBy(p, &corev1.ConfigMap{}, "claude-previous", "")
		gatewayLeftover := controlledBy(p, &corev1.ConfigMap{}, "claude-gateway-previous", naming.ComponentGateway)
		for _, obj := range []client.Object{workerLeftover, unlabelledLeftover, gatewayLeftover} {
			Expect(k8sClient.Create(ctx, obj)).To(Succeed(), "creating %s", obj.GetName())
		}

		By("pruning only the gateway tier, the one that was built")
		waitForDeletion(ctx, p, &corev1.ConfigMap{}, gatewayLeftover.Name)
		Consistently(func() error {
			if _, err := fetch(ctx, p, &corev1.ConfigMap{}, workerLeftover.Name); err != nil {
				return err
			}
			_, err := fetch(ctx, p, &corev1.ConfigMap{}, unlabelledLeftover.Name)
			return err
		}).Should(Succeed(), "the worker tier was not built, so nothing tells whether these are still wanted")

		By("pruning the rest once the Secret exists and both tiers are built")
		Expect(k8sClient.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: secretName, Namespace: ns},
			StringData: map[string]string{secretKey: "t"},
		})).To(Succeed())
		waitForDeletion(ctx, p, &corev1.ConfigMap{}, workerLeftover.Name)
		waitForDeletion(ctx, p, &corev1.ConfigMap{}, unlabelledLeftover.Name)
	})

	It("runs with a ClusterRole that lets it watch, apply and prune every owned kind", func() {
		raw, err := os.ReadFile(filepath.Join("..", "config", "rbac", "role.yaml"))
		Expect(err).NotTo(HaveOccurred())
		var role rbacv1.ClusterRole
		Expect(yaml.Unmarshal(raw, &role)).To(Succeed())

		httpClient, err := rest.HTTPClientFor(restConfig)
		Expect(err).NotTo(HaveOccurred())
		mapper, err := apiutil.NewDynamicRESTMapper(restConfig, httpClient)
		Expect(err).NotTo(HaveOccurred())
		needed := []string{"get", "list", "watch", "create", "update", "patch", "delete"}
		for _, k := range ownedKinds {
			gvk, err := apiutil.GVKForObject(k.newObject(), scheme)
			Expect(err).NotTo(HaveOccurred())
			var resource schema.GroupVersionResource
			mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			switch {
			case err == nil:
				resource = mapping.Resource
			case k.optional != nil && meta.IsNoMatchError(err):
				// A kind whose CRD this API server may not have yet.
				resource, _ = meta.UnsafeGuessKindToResource(gvk)
			default:
				Expect(err).NotTo(HaveOccurred(), "mapping %s", gvk)
			}
			granted := map[string]bool{}
			for _, rule := range role.Rules {
				if slices.Contains(rule.APIGroups, resource.Group) && slices.Contains(rule.Resources, resource.Resource) {
					for _, v := range rule.Verbs {
						granted[v] = true
					}
				}
			}
			for _, v := range needed {
				Expect(granted).To(HaveKey(v), "config/rbac/role.yaml does not grant %s on %s: add an RBAC marker above Reconcile and run make manifests", v, resource)
			}
		}
	})
})

// controlledBy fills obj as an object the pipeline controls, labelled for
// component (none when empty), as an older operator version would have left it.
func controlledBy[T client.Object](p *v1alpha1.DeltaPipeline, obj T, name, component string) T {
	obj.SetName(name)
	obj.SetNamespace(p.Namespace)
	if component != "" {
		obj.SetLabels(naming.Labels(p, component))
	}
	obj.SetOwnerReferences([]metav1.OwnerReference{*metav1.NewControllerRef(p, v1alpha1.GroupVersion.WithKind("DeltaPipeline"))})
	return obj
}
