package e2e

import (
	"fmt"
	"os"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/cmd/loadgen/totals"
	"github.com/deltapipeline/deltapipeline/test/e2e/harness"
)

// convergeTimeout bounds how long the backend may take to show the totals
// once the clients stopped: gateway retries after a worker restart included.
const convergeTimeout = 90 * time.Second

var (
	_ = describePipeline(v1alpha1.GatewayRouterDeltaPipeline)
	_ = describePipeline(v1alpha1.GatewayRouterLoadBalancing)
)

// describePipeline is the suite for one router: DeltaPipeline's own, the
// default, and the upstream load_balancing exporter users may keep.
func describePipeline(router v1alpha1.GatewayRouter) bool {
	return Describe("A DeltaPipeline of 2 gateways and 3 workers on local processes, router "+string(router), Ordered, func() {
		var (
			pipeline *harness.Pipeline
			runDir   string
			// sent accumulates every run's totals: later runs must not disturb
			// the series of earlier ones.
			sent totals.Totals
		)

		BeforeAll(func(ctx SpecContext) {
			binaries, err := harness.BinariesFromEnv()
			Expect(err).NotTo(HaveOccurred())
			runDir, err = os.MkdirTemp("", "deltapipeline-e2e-")
			Expect(err).NotTo(HaveOccurred())
			pipeline, err = harness.Start(ctx,
				harness.WithDir(runDir),
				harness.WithCRDDir(crdDir()),
				harness.WithBinaries(binaries),
				harness.WithGateways(2),
				harness.WithWorkers(3),
				harness.WithMaxWorkers(4),
				harness.WithRouter(router),
				harness.WithConversionInterval(time.Second),
				harness.WithLog(GinkgoWriter),
			)
			Expect(err).NotTo(HaveOccurred())
			sent = totals.Totals{Series: map[string]float64{}}
		}, NodeTimeout(3*time.Minute))

		stopAfterAll(&pipeline, &runDir)

		It("runs the configurations the operator rendered, changing only addresses", func() {
			if router == v1alpha1.GatewayRouterLoadBalancing {
				Expect(pipeline.Rendered.Gateway).To(ContainSubstring("load_balancing:"))
				Expect(pipeline.Rendered.Gateway).To(ContainSubstring("- claude-worker-2.claude-worker."), "the rendered static resolver lists the worker pods' DNS names; only the local run replaces them with addresses")
				Expect(pipeline.Rendered.Gateway).To(ContainSubstring("num_consumers: 1"), "one consumer per worker keeps retried requests in order")
			} else {
				Expect(pipeline.Rendered.Gateway).To(ContainSubstring("deltapipeline_router:"))
				Expect(pipeline.Rendered.Gateway).To(ContainSubstring("name: claude-membership"), "the router watches the published membership; only the local run reads it from a file")
			}
			Expect(pipeline.Rendered.Worker).To(ContainSubstring("prometheusRemoteWrite:"))
			Expect(pipeline.Rendered.Worker).To(ContainSubstring("interval: 1s"))
		})

		It("delivers every series' exact total, each stream converted by one worker", func(ctx SpecContext) {
			run, err := pipeline.StartLoad(harness.Load{
				Name: "steady", Sessions: 40, SharedSessions: 8, Rounds: 8, ExportInterval: time.Second, Seed: 1,
			})
			Expect(err).NotTo(HaveOccurred())
			steady, err := run.Wait(ctx)
			Expect(err).NotTo(HaveOccurred())
			Expect(steady.FailedExports).To(BeZero())
			sent = sent.Merge(steady)

			report := pipeline.WaitForTotals(ctx, sent, convergeTimeout)
			fmt.Fprintf(GinkgoWriter, "FIGURES steady: %s\n", report.Figures())
			Expect(report.Problems()).To(BeEmpty())
			Expect(report.ExactMatches).To(Equal(report.SentSeries))
			Expect(report.SentSeries).To(BeNumerically(">=", 1000), "enough series to exercise every worker")
			for worker, n := range report.SeriesByWorker {
				Expect(n).To(BeNumerically(">", report.SentSeries/10), "worker %d converts a fair share of the streams", worker)
			}

			By("naming series and labels as real Claude Code produces them")
			series := pipeline.Receiver.Series()
			for _, name := range []string{
				"claude_code_session_count_total",
				"claude_code_token_usage_tokens_total",
				"claude_code_cost_usage_USD_total",
				"claude_code_active_time_seconds_total",
				"claude_code_lines_of_code_count_total",
				"claude_code_code_edit_tool_decision_total",
				"claude_code_commit_count_total",
				"loadgen_request_duration_milliseconds_bucket",
				"loadgen_request_duration_milliseconds_count",
				"loadgen_request_duration_milliseconds_sum",
			} {
				key := anySeries(series, name)
				Expect(key).NotTo(BeEmpty(), "no series named %s", name)
				Expect(key).To(ContainSubstring(`job="claude-code"`))
				Expect(key).NotTo(ContainSubstring(`instance="`), "the client sends no service.instance.id")
				Expect(key).To(ContainSubstring(`session_id="`))
				Expect(key).To(MatchRegexp(`user_id="[0-9a-f]{64}"`))
				Expect(key).To(ContainSubstring(`anthropic_provider="firstParty"`))
				Expect(key).To(MatchRegexp(`anthropic_custom_base_url="(true|false)"`))
				Expect(key).To(ContainSubstring(`terminal_type="`))
				Expect(key).To(ContainSubstring(`otel_scope_name="com.anthropic.claude_code"`))
			}
			Expect(anySeries(series, `claude_code_token_usage_tokens_total{`)).To(MatchRegexp(`model="[^"]+".*type="(input|output|cacheRead|cacheCreation)"`))
			Expect(findSeries(series, "claude_code_token_usage_tokens_total", `user_account_uuid="`)).NotTo(BeEmpty(), "OAuth users send their account")
			Expect(findSeries(series, "claude_code_token_usage_tokens_total", `user_email="`)).NotTo(BeEmpty())
			apiKeyUser := false
			for key := range series {
				apiKeyUser = apiKeyUser || strings.HasPrefix(key, "claude_code_token_usage_tokens_total{") && !strings.Contains(key, `user_account_uuid="`)
			}
			Expect(apiKeyUser).To(BeTrue(), "API-key users send no account attributes")
			Expect(findSeries(series, "claude_code_session_count_total", `start_type="continue"`)).NotTo(BeEmpty(), "a --continue process counts its start under a new session id")
			Expect(findSeries(series, "claude_code_lines_of_code_count_total", `type="removed"`)).NotTo(BeEmpty(), "lines removed are sent, 0 included")

			By("counting both writers of a shared session.id")
			Expect(steady.SharedSessionIDs).To(HaveLen(8))
			for _, id := range steady.SharedSessionIDs {
				// The first writer started the session fresh, or with
				// --continue under a new id; the second resumed it.
				key := findSeries(series, "claude_code_session_count_total", `session_id="`+id+`"`, `start_type="resume"`)
				Expect(key).NotTo(BeEmpty(), "session %s has no resumed start", id)
				samples := series[key]
				Expect(samples[len(samples)-1].Value).To(Equal(1.0), "%s: one process resumed session %s", key, id)
				// Both processes write this stream every round; its exact
				// total (checked above for every series) holds both writers'
				// deltas.
				Expect(findSeries(series, "claude_code_active_time_seconds_total", `session_id="`+id+`"`, `type="cli"`)).NotTo(BeEmpty())
			}

			By("rejecting and dropping nothing in the workers")
			status := pipeline.Status(ctx)
			fmt.Fprintf(GinkgoWriter, "STATUS %s\n", status.Line(harness.Status{}))
			Expect(status.GatewayAcceptedPoints).To(Equal(float64(steady.Points)), "the gateways accepted exactly the points the clients had acknowledged")
			Expect(status.WorkerRejectedPoints).To(BeZero())
			Expect(status.WorkerDroppedPoints).To(BeZero())
			Expect(pipeline.Receiver.Stats().Refused).To(BeZero())
		}, SpecTimeout(3*time.Minute))

		It("keeps every total exact, without a reset, through a SIGKILL and a rolling restart of the workers", func(ctx SpecContext) {
			run, err := pipeline.StartLoad(harness.Load{
				Name: "durability", Sessions: 24, SharedSessions: 4, Rounds: 45, ExportInterval: time.Second, Seed: 2,
			})
			Expect(err).NotTo(HaveOccurred())

			pause := func(d time.Duration) {
				select {
				case <-ctx.Done():
				case <-time.After(d):
				}
			}
			pause(8 * time.Second)
			By("killing worker 1 with SIGKILL and starting it again after 5s with the same state directory")
			Expect(pipeline.KillWorker(1)).To(Succeed())
			pause(5 * time.Second)
			Expect(pipeline.StartWorker(ctx, 1)).To(Succeed())
			pause(4 * time.Second)

			By("restarting every worker in turn with SIGTERM, as a rolling update does")
			for i := range pipeline.Workers {
				Expect(pipeline.StopWorker(i)).To(Succeed())
				Expect(pipeline.StartWorker(ctx, i)).To(Succeed())
				pause(2 * time.Second)
			}

			durability, err := run.Wait(ctx)
			Expect(err).NotTo(HaveOccurred(), "every export of the clients was acknowledged by a gateway")
			Expect(durability.FailedExports).To(BeZero())
			sent = sent.Merge(durability)

			report := pipeline.WaitForTotals(ctx, sent, convergeTimeout)
			fmt.Fprintf(GinkgoWriter, "FIGURES after SIGKILL and rolling restart: %s\n", report.Figures())
			Expect(report.Problems()).To(BeEmpty())
			Expect(report.ExactMatches).To(Equal(report.SentSeries))
			Expect(report.Decreasing).To(BeEmpty())
		}, SpecTimeout(4*time.Minute))

		It("follows a change of spec.worker.replicas on every gateway within seconds, without a restart", func(ctx SpecContext) {
			if router == v1alpha1.GatewayRouterLoadBalancing {
				Skip("the load_balancing exporter changes its ring only when the gateways roll")
			}
			pids := make([]int, len(pipeline.Gateways))
			for i, g := range pipeline.Gateways {
				pids[i] = g.Pid()
			}
			changed := time.Now()
			epoch, err := pipeline.ScaleWorkers(ctx, 4)
			Expect(err).NotTo(HaveOccurred())
			Eventually(func() ([]uint64, error) { return pipeline.GatewayMembershipEpochs(ctx) }).
				WithTimeout(5*time.Second).WithPolling(50*time.Millisecond).
				Should(HaveEach(epoch), "every gateway routes by the published epoch")
			fmt.Fprintf(GinkgoWriter, "FIGURES membership epoch %d on every gateway %s after the spec change\n", epoch, time.Since(changed).Round(time.Millisecond))
			for i, g := range pipeline.Gateways {
				Expect(g.Pid()).To(Equal(pids[i]), "gateway %d was not restarted", i)
			}

			By("sending new sessions, which the fourth worker now takes its share of")
			run, err := pipeline.StartLoad(harness.Load{
				Name: "rescaled", Sessions: 24, Rounds: 4, ExportInterval: time.Second, Seed: 3,
			})
			Expect(err).NotTo(HaveOccurred())
			rescaled, err := run.Wait(ctx)
			Expect(err).NotTo(HaveOccurred())
			Expect(rescaled.FailedExports).To(BeZero())
			sent = sent.Merge(rescaled)
			report := pipeline.WaitForTotals(ctx, sent, convergeTimeout)
			fmt.Fprintf(GinkgoWriter, "FIGURES after growing to 4 workers: %s\n", report.Figures())
			Expect(report.SeriesByWorker[3]).To(BeNumerically(">", 0), "the new worker converts streams")
			// Streams of the earlier sessions that the fourth worker owns now
			// were handed over to it: they continue there.
			Expect(report.AllowingMoves(1).Problems()).To(BeEmpty())
			Expect(report.ExactMatches).To(Equal(report.SentSeries))
		}, SpecTimeout(3*time.Minute))
	})
}

// anySeries returns one received series key starting with prefix.
func anySeries(series map[string][]harness.Sample, prefix string) string {
	for key := range series {
		if strings.HasPrefix(key, prefix) && (strings.HasSuffix(prefix, "{") || strings.HasPrefix(key, prefix+"{")) {
			return key
		}
	}
	return ""
}

// findSeries returns a series of metric name whose key contains every label.
func findSeries(series map[string][]harness.Sample, name string, labels ...string) string {
	for key := range series {
		if !strings.HasPrefix(key, name+"{") {
			continue
		}
		all := true
		for _, label := range labels {
			all = all && strings.Contains(key, label)
		}
		if all {
			return key
		}
	}
	return ""
}
