package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// A pod reads some files from Secret volumes: the gateway its certificate,
// its client tokens and the gateway-to-worker token, the worker that token
// too. The harness reads the same volumes and mounts from the Deployment and
// StatefulSet the operator built, writes each Secret's keys as files under a
// local directory (the files a pod would see at the mount path), and points
// the configuration's paths there. Nothing about which Secret goes where is
// repeated here: a volume the operator adds is mounted locally too.

// secretMount is one Secret volume of a pod's first container.
type secretMount struct {
	MountPath string
	Secret    string
	// Items maps key to file name; nil means every key under its own name.
	Items map[string]string
}

// secretMounts lists the Secret volumes the first container mounts.
func secretMounts(spec corev1.PodSpec) ([]secretMount, error) {
	if len(spec.Containers) == 0 {
		return nil, fmt.Errorf("the pod template has no container")
	}
	byVolume := map[string]*corev1.SecretVolumeSource{}
	for _, v := range spec.Volumes {
		if v.Secret != nil {
			byVolume[v.Name] = v.Secret
		}
	}
	var out []secretMount
	for _, m := range spec.Containers[0].VolumeMounts {
		src, ok := byVolume[m.Name]
		if !ok {
			continue
		}
		if m.SubPath != "" {
			return nil, fmt.Errorf("volume %s is mounted with subPath %s, which the harness does not reproduce", m.Name, m.SubPath)
		}
		sm := secretMount{MountPath: m.MountPath, Secret: src.SecretName}
		if len(src.Items) > 0 {
			sm.Items = map[string]string{}
			for _, it := range src.Items {
				sm.Items[it.Key] = it.Path
			}
		}
		out = append(out, sm)
	}
	return out, nil
}

// LocalMounts are a pod template's Secret volumes written under Root.
type LocalMounts struct {
	Root   string
	mounts []secretMount
}

// Path is where a pod path is found locally.
func (l LocalMounts) Path(podPath string) string { return filepath.Join(l.Root, podPath) }

// Rewrite points every mounted path in a configuration at its local copy.
// The longest mount path wins where one is nested in another.
func (l LocalMounts) Rewrite(config string) string {
	paths := make([]string, 0, len(l.mounts))
	for _, m := range l.mounts {
		paths = append(paths, m.MountPath)
	}
	slices.SortFunc(paths, func(a, b string) int { return len(b) - len(a) })
	// One pass: a rewritten path is never matched again.
	pairs := make([]string, 0, 2*len(paths))
	for _, p := range paths {
		pairs = append(pairs, p+"/", l.Path(p)+"/")
	}
	return strings.NewReplacer(pairs...).Replace(config)
}

// Sync writes the current content of every mounted Secret. Each file is
// replaced by a rename, as the kubelet swaps a refreshed Secret in, so a
// process re-reading it never sees half a file.
func (l LocalMounts) Sync(ctx context.Context, c client.Client, namespace string) error {
	for _, m := range l.mounts {
		var s corev1.Secret
		if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: m.Secret}, &s); err != nil {
			return fmt.Errorf("reading Secret %s mounted at %s: %w", m.Secret, m.MountPath, err)
		}
		dir := l.Path(m.MountPath)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("creating %s: %w", dir, err)
		}
		files := m.Items
		if files == nil {
			files = map[string]string{}
			for k := range s.Data {
				files[k] = k
			}
		}
		for key, name := range files {
			value, ok := s.Data[key]
			if !ok {
				return fmt.Errorf("the Secret %s mounted at %s has no key %s", m.Secret, m.MountPath, key)
			}
			tmp := filepath.Join(dir, "."+name+".tmp")
			if err := os.WriteFile(tmp, value, 0o600); err != nil {
				return fmt.Errorf("writing %s of Secret %s: %w", key, m.Secret, err)
			}
			if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
				return fmt.Errorf("replacing %s of Secret %s: %w", key, m.Secret, err)
			}
		}
	}
	return nil
}

// podMounts reads the pod template of the gateway Deployment or the worker
// StatefulSet, waiting for the operator to create it, and writes its Secret
// volumes under root.
func (cp *ControlPlane) podMounts(ctx context.Context, obj client.Object, name types.NamespacedName, root string) (LocalMounts, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		err := cp.Client.Get(ctx, name, obj)
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return LocalMounts{}, fmt.Errorf("waiting for the operator to create %s: %w (last: %w)", name, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	var spec corev1.PodSpec
	switch o := obj.(type) {
	case *appsv1.Deployment:
		spec = o.Spec.Template.Spec
	case *appsv1.StatefulSet:
		spec = o.Spec.Template.Spec
	default:
		return LocalMounts{}, fmt.Errorf("%T has no pod template the harness knows", obj)
	}
	mounts, err := secretMounts(spec)
	if err != nil {
		return LocalMounts{}, fmt.Errorf("%s: %w", name, err)
	}
	l := LocalMounts{Root: root, mounts: mounts}
	return l, l.Sync(ctx, cp.Client, name.Namespace)
}
