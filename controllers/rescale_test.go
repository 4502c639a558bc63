package controllers

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/handoff"
	"github.com/deltapipeline/deltapipeline/internal/manifests"
	"github.com/deltapipeline/deltapipeline/internal/naming"
	"github.com/deltapipeline/deltapipeline/internal/pipelinetest"
	"github.com/deltapipeline/deltapipeline/internal/ring"
)

var _ = Describe("Rescaling the worker ring", func() {
	var (
		ctx context.Context
		ns  string
		p   *v1alpha1.DeltaPipeline
	)

	BeforeEach(func() {
		ctx = context.Background()
		ns = createNamespace(ctx)
		p = createPipeline(ctx, pipelinetest.New("claude", ns))
		waitForObject(ctx, p, &appsv1.StatefulSet{}, naming.WorkerStatefulSet(p))
		markTiersReady(ctx, p)
	})

	membership := func(g Gomega) ring.Membership {
		cm, err := fetch(ctx, p, &corev1.ConfigMap{}, naming.MembershipConfigMap(p))
		g.Expect(err).NotTo(HaveOccurred())
		m, err := ring.ParseMembership([]byte(cm.Data[manifests.MembershipKey]))
		g.Expect(err).NotTo(HaveOccurred())
		return m
	}
	pods := func() int32 {
		s, err := fetch(ctx, p, &appsv1.StatefulSet{}, naming.WorkerStatefulSet(p))
		Expect(err).NotTo(HaveOccurred())
		return ptr.Deref(s.Spec.Replicas, 0)
	}
	ringOf := func(workers, previous int) func(g Gomega) {
		return func(g Gomega) {
			m := membership(g)
			g.Expect(m.Members).To(HaveLen(workers))
			g.Expect(m.Previous).To(HaveLen(previous))
		}
	}
	normalEvents := func(reason string) func() []string {
		return func() []string {
			var list eventsv1.EventList
			Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
			var notes []string
			for _, e := range list.Items {
				if e.Regarding.Name == p.Name && e.Type == corev1.EventTypeNormal && e.Reason == reason {
					notes = append(notes, e.Note)
				}
			}
			return notes
		}
	}

	It("grows the StatefulSet first, adds ready workers to the ring, and settles once every worker handed its streams over", func() {
		start := membership(Default)
		updatePipeline(ctx, p, func(p *v1alpha1.DeltaPipeline) { p.Spec.Worker.Replicas = ptr.To[int32](5) })
		Eventually(pods).Should(Equal(int32(5)), "new pods start before they join the ring")
		Eventually(condition(ctx, p, v1alpha1.ConditionRescaling)).Should(haveCondition(ctx, p, metav1.ConditionTrue, v1alpha1.ReasonStartingWorkers))
		Consistently(ringOf(3, 0)).Should(Succeed(), "no worker joins before it is ready")

		markTiersReady(ctx, p)
		Eventually(ringOf(5, 3)).Should(Succeed())
		handingOver := membership(Default)
		Expect(handingOver.Epoch).To(Equal(start.Epoch + 1))
		Eventually(condition(ctx, p, v1alpha1.ConditionRescaling)).Should(haveCondition(ctx, p, metav1.ConditionTrue, v1alpha1.ReasonHandingOver))
		Eventually(normalEvents(v1alpha1.ReasonHandingOver)).ShouldNot(BeEmpty())

		By("settling only when every worker of both rings is done")
		workerProgress.report(p, 4, handoff.Status{Epoch: handingOver.Epoch, Rescaling: true, Swept: true, Complete: true})
		Eventually(func() string { return condition(ctx, p, v1alpha1.ConditionRescaling)().Message }).
			Should(ContainSubstring("4 of 5 workers done"))
		Consistently(ringOf(5, 3)).Should(Succeed(), "claude-worker-4 has not reported")
		workerProgress.report(p, 5, handoff.Status{Epoch: handingOver.Epoch, Rescaling: true, Swept: true, Complete: true})
		Eventually(ringOf(5, 0)).Should(Succeed())
		Expect(membership(Default).Epoch).To(Equal(handingOver.Epoch + 1))
		Eventually(condition(ctx, p, v1alpha1.ConditionRescaling)).Should(haveCondition(ctx, p, metav1.ConditionFalse, v1alpha1.ReasonRingSteady))
		Eventually(normalEvents("RescaleComplete")).ShouldNot(BeEmpty())
		Expect(pods()).To(Equal(int32(5)))
	})

	It("takes leaving workers out of the ring first and shrinks the StatefulSet only once they are drained", func() {
		updatePipeline(ctx, p, func(p *v1alpha1.DeltaPipeline) { p.Spec.Worker.Replicas = ptr.To[int32](2) })
		Eventually(ringOf(2, 3)).Should(Succeed(), "the leaving worker leaves the ring at once")
		shrinking := membership(Default)
		Consistently(pods).Should(Equal(int32(3)), "the leaving worker runs until it handed its streams over")
		Eventually(func() string { return condition(ctx, p, v1alpha1.ConditionRescaling)().Message }).
			Should(ContainSubstring("claude-worker-2 (unreachable"))

		By("a change of replicas during the hand-over waits for it")
		updatePipeline(ctx, p, func(p *v1alpha1.DeltaPipeline) { p.Spec.Worker.Replicas = ptr.To[int32](4) })
		Consistently(ringOf(2, 3)).Should(Succeed())

		workerProgress.report(p, 3, handoff.Status{Epoch: shrinking.Epoch, Rescaling: true, Swept: true, Complete: true})
		Eventually(ringOf(2, 0)).Should(Succeed())
		By("then the next change starts: the StatefulSet grows again for 4 workers")
		Eventually(pods).Should(Equal(int32(4)))
		Eventually(condition(ctx, p, v1alpha1.ConditionRescaling)).Should(haveCondition(ctx, p, metav1.ConditionTrue, v1alpha1.ReasonStartingWorkers))
	})
})
