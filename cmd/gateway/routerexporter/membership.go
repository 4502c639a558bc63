package routerexporter

import (
	"context"

	"go.uber.org/zap"

	"github.com/deltapipeline/deltapipeline/internal/membership"
)

// watchMembership calls publish with every new version of the published
// membership document until ctx ends, through the watch the workers use
// too. Errors that a later version may fix are logged and retried.
func watchMembership(ctx context.Context, cfg MembershipConfig, log *zap.Logger, publish func([]byte)) error {
	return membership.Watch(ctx, cfg.source(), func(msg string, err error) {
		log.Warn(msg, zap.Error(err))
	}, publish)
}

func (c MembershipConfig) source() membership.Source {
	src := membership.Source{File: c.File, PollInterval: c.PollInterval}
	if cm := c.ConfigMap; cm != nil {
		src.ConfigMap = &membership.ConfigMap{Namespace: cm.Namespace, Name: cm.Name, Key: cm.Key, Kubeconfig: cm.Kubeconfig}
	}
	return src
}
