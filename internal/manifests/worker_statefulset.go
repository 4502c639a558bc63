package manifests

import (
	"path"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
	"github.com/deltapipeline/deltapipeline/internal/workerconfig"
)

const defaultStateSize = "1Gi"

// WorkerStatefulSet runs the workers. A StatefulSet gives every worker a
// stable name (its place on the gateway's hash ring) and its own state
// volume. configHash is the ContentHash of the worker ConfigMap data;
// replicas come from the ring plan, which keeps leaving workers until they
// handed their streams over.
func WorkerStatefulSet(p *v1alpha1.DeltaPipeline, opts Options, configHash string, replicas int32) *appsv1.StatefulSet {
	selector := naming.SelectorLabels(p, naming.ComponentWorker)

	ports := []corev1.ContainerPort{
		tcpPort("otlp-grpc", workerconfig.DefaultOTLPGRPCPort),
		tcpPort("otlp-http", workerconfig.DefaultOTLPHTTPPort),
		tcpPort("telemetry", workerconfig.DefaultTelemetryPort),
	}
	if HandoffEnabled(p) {
		ports = append(ports, tcpPort("peer", workerconfig.DefaultPeerPort))
	}
	if port := PrometheusPort(p); port != 0 {
		ports = append(ports, tcpPort("prometheus", port))
	}

	mounts := []corev1.VolumeMount{{Name: "config", MountPath: WorkerConfigPath, SubPath: WorkerConfigKey, ReadOnly: true}}
	volumes := []corev1.Volume{{
		Name: "config",
		VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: naming.WorkerConfigMap(p)},
			DefaultMode:          ptr.To[int32](0o444),
		}},
	}}
	refVolumes, refMounts := referenceVolumes(p)
	volumes = append(volumes, refVolumes...)
	tokenVolumes, tokenMounts := workerTokenVolumes(p)
	volumes = append(volumes, tokenVolumes...)
	peerVolumes, peerMounts := peerTokenVolumes(p)
	volumes = append(volumes, peerVolumes...)
	mounts = append(mounts, refMounts...)
	mounts = append(mounts, tokenMounts...)
	mounts = append(mounts, peerMounts...)

	var claims []corev1.PersistentVolumeClaim
	if PersistenceEnabled(p) {
		mounts = append(mounts, corev1.VolumeMount{Name: naming.WorkerStateVolumeClaim, MountPath: WorkerStateDir})
		claims = []corev1.PersistentVolumeClaim{stateVolumeClaim(p)}
	}

	spec := corev1.PodSpec{
		ServiceAccountName:            naming.WorkerServiceAccount(p),
		SecurityContext:               RestrictedPodSecurityContext(workerUserID),
		TerminationGracePeriodSeconds: ptr.To[int64](WorkerTerminationGracePeriodSeconds),
		Containers: []corev1.Container{{
			Name:            "worker",
			Image:           workerImage(p, opts),
			Args:            []string{"--config=" + WorkerConfigPath},
			Ports:           ports,
			Resources:       WorkerResources(p),
			LivenessProbe:   httpProbe("/healthz", workerconfig.DefaultTelemetryPort, 5, 10, 3),
			ReadinessProbe:  httpProbe("/readyz", workerconfig.DefaultTelemetryPort, 2, 5, 3),
			SecurityContext: RestrictedContainerSecurityContext(),
			VolumeMounts:    mounts,
		}},
		Volumes: volumes,
	}
	applyScheduling(&spec, p.Spec.Worker.Scheduling, selector)

	return &appsv1.StatefulSet{
		ObjectMeta: objectMeta(p, naming.WorkerStatefulSet(p), naming.ComponentWorker),
		Spec: appsv1.StatefulSetSpec{
			Replicas:            ptr.To(replicas),
			ServiceName:         naming.WorkerHeadlessService(p),
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector:            labelSelector(selector),
			UpdateStrategy:      appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels:      naming.Labels(p, naming.ComponentWorker),
					Annotations: map[string]string{naming.ConfigHashAnnotation: configHash},
				},
				Spec: spec,
			},
			VolumeClaimTemplates: claims,
			// A removed ordinal's state was handed over before the
			// StatefulSet shrank: kept, it would come back stale when
			// the ordinal is added again.
			PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
				WhenScaled:  appsv1.DeletePersistentVolumeClaimRetentionPolicyType,
				WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
			},
		},
	}
}

func stateVolumeClaim(p *v1alpha1.DeltaPipeline) corev1.PersistentVolumeClaim {
	size := resource.MustParse(defaultStateSize)
	if s := p.Spec.Worker.Persistence.Size; s != nil {
		size = s.DeepCopy()
	}
	return corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{
			Name:   naming.WorkerStateVolumeClaim,
			Labels: naming.Labels(p, naming.ComponentWorker),
		},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: p.Spec.Worker.Persistence.StorageClassName,
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: size},
			},
		},
	}
}

// referenceVolumes mounts each referenced Secret and ConfigMap once, read
// only, at the directory WorkerConfig points the worker to.
func referenceVolumes(p *v1alpha1.DeltaPipeline) ([]corev1.Volume, []corev1.VolumeMount) {
	var volumes []corev1.Volume
	var mounts []corev1.VolumeMount
	for _, name := range ReferencedSecretNames(p) {
		v := naming.SecretVolume(name)
		volumes = append(volumes, corev1.Volume{Name: v, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName:  name,
			DefaultMode: ptr.To[int32](0o440),
		}}})
		mounts = append(mounts, corev1.VolumeMount{Name: v, MountPath: path.Join(WorkerSecretsDir, name), ReadOnly: true})
	}
	for _, name := range ReferencedConfigMapNames(p) {
		v := naming.ConfigMapVolume(name)
		volumes = append(volumes, corev1.Volume{Name: v, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: name},
			DefaultMode:          ptr.To[int32](0o444),
		}}})
		mounts = append(mounts, corev1.VolumeMount{Name: v, MountPath: path.Join(WorkerConfigMapDir, name), ReadOnly: true})
	}
	return volumes, mounts
}
