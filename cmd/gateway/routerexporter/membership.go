package routerexporter

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// watchMembership calls publish with every new version of the published
// membership document until ctx ends. Errors that a later version may fix
// (a missing file, an unreachable API server) are logged and retried.
func watchMembership(ctx context.Context, cfg MembershipConfig, log *zap.Logger, publish func([]byte)) error {
	if cfg.ConfigMap != nil {
		return watchConfigMap(ctx, *cfg.ConfigMap, log, publish)
	}
	go watchFile(ctx, cfg.File, cfg.PollInterval, log, publish)
	return nil
}

// watchFile polls the file, which suits a document written by replacing the
// file (as a test harness or a mounted volume does).
func watchFile(ctx context.Context, path string, every time.Duration, log *zap.Logger, publish func([]byte)) {
	var last []byte
	var lastErr string
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		b, err := os.ReadFile(path)
		switch {
		case err != nil:
			if err.Error() != lastErr {
				log.Warn("cannot read the membership file", zap.Error(err))
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
// reaches the router within a second of the operator writing it.
func watchConfigMap(ctx context.Context, src ConfigMapSource, log *zap.Logger, publish func([]byte)) error {
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
			log.Warn("the membership ConfigMap has no membership key",
				zap.String("configmap", src.Namespace+"/"+src.Name), zap.String("key", src.Key))
			return
		}
		publish([]byte(doc))
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    handle,
		UpdateFunc: func(_, obj any) { handle(obj) },
	}); err != nil {
		return fmt.Errorf("watching the membership ConfigMap: %w", err)
	}
	if err := informer.SetWatchErrorHandler(func(_ *cache.Reflector, err error) {
		log.Warn("watching the membership ConfigMap failed; retrying",
			zap.String("configmap", src.Namespace+"/"+src.Name), zap.Error(err))
	}); err != nil {
		return fmt.Errorf("watching the membership ConfigMap: %w", err)
	}
	go informer.Run(ctx.Done())
	return nil
}
