package e2e

import (
	"fmt"
	"os"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/test/e2e/harness"
)

// handedOverMetric counts the streams a worker handed over and its new
// owner acknowledged.
const handedOverMetric = "deltapipeline_worker_handoff_streams_sent_total"

var _ = Describe("Rescaling the worker tier under load through the API, router deltapipeline", Ordered, func() {
	var (
		pipeline *harness.Pipeline
		runDir   string
	)

	BeforeAll(func(ctx SpecContext) {
		binaries, err := harness.BinariesFromEnv()
		Expect(err).NotTo(HaveOccurred())
		runDir, err = os.MkdirTemp("", "deltapipeline-e2e-rescale-")
		Expect(err).NotTo(HaveOccurred())
		pipeline, err = harness.Start(ctx,
			harness.WithDir(runDir),
			harness.WithCRDDir(crdDir()),
			harness.WithBinaries(binaries),
			harness.WithGateways(2),
			harness.WithWorkers(3),
			harness.WithMaxWorkers(5),
			harness.WithRouter(v1alpha1.GatewayRouterDeltaPipeline),
			harness.WithConversionInterval(time.Second),
			harness.WithLog(GinkgoWriter),
		)
		Expect(err).NotTo(HaveOccurred())
	}, NodeTimeout(3*time.Minute))

	stopAfterAll(&pipeline, &runDir)

	It("keeps every series exact from 3 to 5 to 2 workers: streams move with their state", func(ctx SpecContext) {
		run, err := pipeline.StartLoad(harness.Load{
			Name: "rescale", Sessions: 60, SharedSessions: 10, Rounds: 50, ExportInterval: time.Second, Seed: 11,
		})
		Expect(err).NotTo(HaveOccurred())

		time.Sleep(10 * time.Second)
		start := time.Now()
		epoch, err := pipeline.ScaleWorkers(ctx, 5)
		Expect(err).NotTo(HaveOccurred())
		fmt.Fprintf(GinkgoWriter, "FIGURES 3 -> 5 workers settled at epoch %d in %s\n", epoch, time.Since(start).Round(time.Millisecond))

		time.Sleep(8 * time.Second)
		start = time.Now()
		epoch, err = pipeline.ScaleWorkers(ctx, 2)
		Expect(err).NotTo(HaveOccurred())
		fmt.Fprintf(GinkgoWriter, "FIGURES 5 -> 2 workers settled at epoch %d in %s\n", epoch, time.Since(start).Round(time.Millisecond))

		sent, err := run.Wait(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(sent.FailedExports).To(BeZero(), "no export was refused for good")

		// Across the two rescales a stream may change owner twice.
		report := pipeline.WaitForTotals(ctx, sent, convergeTimeout).AllowingMoves(2)
		fmt.Fprintf(GinkgoWriter, "FIGURES after 3 -> 5 -> 2 workers under load: %s\n", report.Figures())
		Expect(report.Problems()).To(BeEmpty())
		Expect(report.ExactMatches).To(Equal(report.SentSeries))
		Expect(report.Decreasing).To(BeEmpty(), "no series ever decreases")
		Expect(report.OutOfOrder).To(BeEmpty(), "the backend would refuse no sample")
		Expect(report.SplitAcrossWorkers).To(BeEmpty(), "no series written by two workers at once: a writer changes at most once per rescale")
		Expect(report.Moved).NotTo(BeEmpty(), "streams changed owner mid-series")
		stats := pipeline.Receiver.Stats()
		Expect(stats.Refused).To(BeZero(), "the receiver refused no request: %v", stats.LastError)

		handedOver := 0.0
		for _, w := range pipeline.Workers {
			s, err := harness.ScrapeMetrics(ctx, w.MetricsURL())
			Expect(err).NotTo(HaveOccurred())
			handedOver += s.Sum(handedOverMetric, nil)
		}
		fmt.Fprintf(GinkgoWriter, "FIGURES %d series moved between workers; the 2 remaining workers handed %v streams over since they started\n",
			len(report.Moved), handedOver)
	}, SpecTimeout(6*time.Minute))
})
