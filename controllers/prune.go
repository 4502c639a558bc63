package controllers

import (
	"context"
	"fmt"
	"reflect"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
)

// pipelineTiers are the values of the component label a pipeline's objects carry.
var pipelineTiers = []string{naming.ComponentGateway, naming.ComponentWorker}

// builtTier is one tier whose objects this reconcile built and applied.
type builtTier struct {
	component string
	objects   []client.Object
}

// desiredObject names one desired object across kinds.
type desiredObject struct {
	kind reflect.Type
	name string
}

// prune deletes, kind by kind, the objects this pipeline controls that
// belong to a tier built in this reconcile but are no longer among its
// objects: an optional feature turned off, an object a renamed builder no
// longer makes. A tier that was not built (its configuration is invalid or
// references are missing) keeps its objects.
func (r *DeltaPipelineReconciler) prune(ctx context.Context, p *v1alpha1.DeltaPipeline, built []builtTier) error {
	if len(built) == 0 {
		return nil
	}
	desired := map[desiredObject]bool{}
	tiers := map[string]bool{}
	for _, t := range built {
		tiers[t.component] = true
		for _, o := range t.objects {
			desired[desiredObject{reflect.TypeOf(o), o.GetName()}] = true
		}
	}
	for _, k := range ownedKinds {
		if installed, err := r.kindInstalled(k); err != nil {
			return err
		} else if !installed {
			continue
		}
		list := k.newList()
		opts := []client.ListOption{client.InNamespace(p.Namespace)}
		if k.uncached {
			// The instance label narrows what is read from the API server
			// (every Secret of the namespace otherwise); control is still
			// checked on every item below.
			opts = append(opts, client.MatchingLabels{naming.LabelInstance: p.Name})
		}
		if err := r.readerFor(k).List(ctx, list, opts...); err != nil {
			return fmt.Errorf("listing %s objects to prune: %w", k.name, err)
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			return fmt.Errorf("reading the list of %s objects to prune: %w", k.name, err)
		}
		for _, item := range items {
			obj, ok := item.(client.Object)
			if !ok {
				return fmt.Errorf("listing %s objects to prune: item of type %T has no object metadata", k.name, item)
			}
			if !metav1.IsControlledBy(obj, p) || desired[desiredObject{reflect.TypeOf(obj), obj.GetName()}] ||
				!obj.GetDeletionTimestamp().IsZero() || !inPruneScope(obj, tiers) {
				continue
			}
			// The UID precondition spares an object recreated under the
			// same name since the list was read.
			if err := r.Delete(ctx, obj, client.Preconditions{UID: ptr.To(obj.GetUID())}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("deleting %s %s, which the pipeline no longer wants: %w", k.name, obj.GetName(), err)
			}
			log.FromContext(ctx).Info("object pruned", "kind", k.name, "name", obj.GetName())
		}
	}
	return nil
}

// inPruneScope says whether a controlled object that is not desired may be
// deleted given the tiers built: an object of a built tier may, and one
// whose component label names no tier only when every tier was built, since
// then the reconcile knows everything the pipeline wants.
func inPruneScope(obj client.Object, builtTiers map[string]bool) bool {
	if builtTiers[obj.GetLabels()[naming.LabelComponent]] {
		return true
	}
	for _, t := range pipelineTiers {
		if !builtTiers[t] {
			return false
		}
	}
	return true
}
