// Package membership follows the worker membership the operator publishes
// (see ring.Membership): through a watch of its ConfigMap in a cluster, or
// by polling a file that a test harness or a benchmark writes. Gateways and
// workers both learn the ring from here, so both tiers see a change the
// same way and within the same bound.
package membership

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// Source names exactly one place the membership document is published.
type Source struct {
	// ConfigMap is watched through the Kubernetes API.
	ConfigMap *ConfigMap
	// File is read again whenever it changes, checked every PollInterval.
	File         string
	PollInterval time.Duration
}

// ConfigMap is the ConfigMap holding the document under Key. Kubeconfig,
// when set, is used instead of the pod's service account.
type ConfigMap struct {
	Namespace, Name, Key string
	Kubeconfig           string
}

// Validate reports what makes s unusable.
func (s Source) Validate() error {
	switch {
	case s.ConfigMap == nil && s.File == "":
		return errors.New("membership: set a ConfigMap or a file")
	case s.ConfigMap != nil && s.File != "":
		return errors.New("membership: set a ConfigMap or a file, not both")
	case s.ConfigMap != nil && (s.ConfigMap.Namespace == "" || s.ConfigMap.Name == "" || s.ConfigMap.Key == ""):
		return errors.New("membership: the ConfigMap needs a namespace, a name and a key")
	case s.File != "" && s.PollInterval <= 0:
		return errors.New("membership: the file's poll interval must be positive")
	}
	return nil
}

// Warn receives problems that a later version of the document or a retry
// may fix; the watch goes on.
type Warn func(msg string, err error)

// Watch calls publish with every new version of the document until ctx
// ends. It returns an error only when the watch cannot start at all.
func Watch(ctx context.Context, src Source, warn Warn, publish func([]byte)) error {
	if err := src.Validate(); err != nil {
		return err
	}
	if src.ConfigMap != nil {
		return watchConfigMap(ctx, *src.ConfigMap, warn, publish)
	}
	go watchFile(ctx, src.File, src.PollInterval, warn, publish)
	return nil
}

// watchFile polls the file, which suits a document written by replacing the
// file (as a test harness or a mounted volume does).
func watchFile(ctx context.Context, path string, every time.Duration, warn Warn, publish func([]byte)) {
	var last []byte
	var lastErr string
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		b, err := os.ReadFile(path)
		switch {
		case err != nil:
			if err.Error() != lastErr {
				warn("cannot read the membership file", err)
				lastErr = err.Error()
			}
		case !bytes.Equal(b, last):
			last, lastErr = b, ""
			publish(b)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// watchConfigMap follows one ConfigMap through a watch, so a change
// arrives within a second of the operator writing it.
func watchConfigMap(ctx context.Context, src ConfigMap, warn Warn, publish func([]byte)) error {
	var restCfg *rest.Config
	var err error
	if src.Kubeconfig != "" {
		restCfg, err = clientcmd.BuildConfigFromFlags("", src.Kubeconfig)
	} else {
		restCfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return fmt.Errorf("configuring the Kubernetes client that watches the membership: %w", err)
	}
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("creating the Kubernetes client that watches the membership: %w", err)
	}
	where := src.Namespace + "/" + src.Name
	lw := cache.NewListWatchFromClient(client.CoreV1().RESTClient(), "configmaps", src.Namespace,
		fields.OneTermEqualSelector("metadata.name", src.Name))
	informer := cache.NewSharedInformer(lw, &corev1.ConfigMap{}, 0)
	handle := func(obj any) {
		cm, ok := obj.(*corev1.ConfigMap)
		if !ok {
			return
		}
		doc, ok := cm.Data[src.Key]
		if !ok {
			warn("the membership ConfigMap "+where+" has no key "+src.Key, nil)
			return
		}
		publish([]byte(doc))
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    handle,
		UpdateFunc: func(_, obj any) { handle(obj) },
	}); err != nil {
		return fmt.Errorf("watching the membership ConfigMap %s: %w", where, err)
	}
	if err := informer.SetWatchErrorHandler(func(_ *cache.Reflector, err error) {
		warn("watching the membership ConfigMap "+where+" failed; retrying", err)
	}); err != nil {
		return fmt.Errorf("watching the membership ConfigMap %s: %w", where, err)
	}
	go informer.Run(ctx.Done())
	return nil
}
