package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
)

// suiteEnv is what `make test-cluster` passes: tools, images and the node.
type suiteEnv struct {
	Kubeconfig, Helm, Kubectl, ChartDir, Loadgen string
	ManagerImage, WorkerImage                    string
	UpgradeManagerImage, UpgradeWorkerImage      string
	GatewayImage, LoadgenImage                   string
	// PrometheusImage, when set, runs Prometheus as the receiver;
	// otherwise ReceiverImage runs hack/cluster/receiver.
	PrometheusImage, ReceiverImage string
	VolumesDir, NodeName           string
}

func suiteEnvFromOS() (suiteEnv, error) {
	e := suiteEnv{}
	vars := []struct {
		name string
		into *string
	}{
		{"KUBECONFIG", &e.Kubeconfig}, {"HELM", &e.Helm}, {"KUBECTL", &e.Kubectl}, {"CHART_DIR", &e.ChartDir},
		{"LOADGEN_BINARY", &e.Loadgen}, {"MANAGER_IMG", &e.ManagerImage}, {"WORKER_IMG", &e.WorkerImage},
		{"UPGRADE_MANAGER_IMG", &e.UpgradeManagerImage}, {"UPGRADE_WORKER_IMG", &e.UpgradeWorkerImage},
		{"GATEWAY_IMG", &e.GatewayImage}, {"LOADGEN_IMG", &e.LoadgenImage},
		{"CLUSTER_VOLUMES_DIR", &e.VolumesDir}, {"NODE_NAME", &e.NodeName},
	}
	var missing []string
	for _, v := range vars {
		*v.into = os.Getenv(v.name)
		if *v.into == "" {
			missing = append(missing, v.name)
		}
	}
	e.PrometheusImage, e.ReceiverImage = os.Getenv("PROMETHEUS_IMG"), os.Getenv("RECEIVER_IMG")
	if e.PrometheusImage == "" && e.ReceiverImage == "" {
		missing = append(missing, "PROMETHEUS_IMG or RECEIVER_IMG")
	}
	if len(missing) > 0 {
		return e, fmt.Errorf("the cluster suite needs %s; run it with `make test-cluster`", strings.Join(missing, ", "))
	}
	return e, nil
}

// splitImage splits registry/repo:tag at the tag's colon.
func splitImage(image string) (repository, tag string) {
	i := strings.LastIndex(image, ":")
	if i < 0 || strings.Contains(image[i:], "/") {
		return image, ""
	}
	return image[:i], image[i+1:]
}

func newClient(kubeconfig string) (client.Client, error) {
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", kubeconfig, err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	return client.New(config, client.Options{Scheme: scheme})
}

// command runs a user-facing tool (kubectl, helm) the way a user would, and
// returns its output; a failure carries the output.
func command(ctx context.Context, binary string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, binary, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	fmt.Fprintf(GinkgoWriter, "$ %s %s\n", binary, strings.Join(args, " "))
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\n%s", binary, strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// restrictedNamespace enforces the restricted Pod Security Standard, as a
// hardened production namespace does: a pod that is not non-root, without
// privilege escalation, all capabilities dropped and RuntimeDefault seccomp
// is refused at admission.
func restrictedNamespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce":         "restricted",
		"pod-security.kubernetes.io/enforce-version": "latest",
	}}}
}

// localStorageClassName is the cluster's default StorageClass: static local
// PersistentVolumes bound when a pod is scheduled. Unlike hostPath volumes,
// the kubelet applies the pod's fsGroup to them, so the non-root workers can
// write their state.
const localStorageClassName = "local-static"

func localStorageClass() *storagev1.StorageClass {
	binding := storagev1.VolumeBindingWaitForFirstConsumer
	reclaim := corev1.PersistentVolumeReclaimDelete
	return &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{
			Name:        localStorageClassName,
			Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"},
		},
		Provisioner:       "kubernetes.io/no-provisioner",
		VolumeBindingMode: &binding,
		ReclaimPolicy:     &reclaim,
	}
}

// localVolume is a static PersistentVolume on directory path of node.
func localVolume(name, path, node string) *corev1.PersistentVolume {
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			StorageClassName:              localStorageClassName,
			PersistentVolumeSource:        corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: path}},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{
					Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{node},
				}},
			}}}},
		},
	}
}

// eventually polls fn until it returns nil, failing with its last error.
func eventually(ctx context.Context, timeout time.Duration, what string, fn func(context.Context) error) {
	GinkgoHelper()
	Eventually(ctx, fn).WithTimeout(timeout).WithPolling(time.Second).Should(Succeed(), what)
}

// deploymentRolledOut reports whether every replica of d runs its latest
// template and is available.
func deploymentRolledOut(d *appsv1.Deployment) error {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	if s.ObservedGeneration < d.Generation || s.UpdatedReplicas != want || s.AvailableReplicas != want || s.Replicas != want {
		return fmt.Errorf("deployment %s: generation %d observed %d, replicas %d updated %d available %d, want %d",
			d.Name, d.Generation, s.ObservedGeneration, s.Replicas, s.UpdatedReplicas, s.AvailableReplicas, want)
	}
	return nil
}

// statefulSetRolledOut reports whether every replica of s runs its latest
// revision and is ready.
func statefulSetRolledOut(s *appsv1.StatefulSet) error {
	want := int32(1)
	if s.Spec.Replicas != nil {
		want = *s.Spec.Replicas
	}
	st := s.Status
	if st.ObservedGeneration < s.Generation || st.UpdateRevision != st.CurrentRevision || st.UpdatedReplicas != want || st.ReadyReplicas != want {
		return fmt.Errorf("statefulset %s: generation %d observed %d, revision %s current %s, updated %d ready %d, want %d",
			s.Name, s.Generation, st.ObservedGeneration, st.UpdateRevision, st.CurrentRevision, st.UpdatedReplicas, st.ReadyReplicas, want)
	}
	return nil
}
