package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/manifests"
	"github.com/deltapipeline/deltapipeline/internal/naming"
	"github.com/deltapipeline/deltapipeline/internal/pipelinetest"
	"github.com/deltapipeline/deltapipeline/test/e2e/harness"
)

// Metric names the refusals are counted in: the gateways' OTLP/HTTP and
// gRPC server metrics (the authenticator answers before the receiver, so
// the receiver's own refused counters do not see them) and the worker's.
const (
	gatewayHTTPRequests        = "http_server_request_duration_count"
	gatewayGRPCCalls           = "rpc_server_call_duration_count"
	workerUnauthenticatedTotal = "deltapipeline_worker_receive_unauthenticated_requests_total"
	workerReceivedPoints       = "deltapipeline_worker_received_points_total"
)

var _ = Describe("A DeltaPipeline exposed with TLS and bearer tokens", Ordered, func() {
	var (
		pipeline *harness.Pipeline
		runDir   string
		caFile   string
		// tokenFile holds team b's token, as a laptop's environment would.
		tokenFile string
		roots     *x509.CertPool
	)

	BeforeAll(func(ctx SpecContext) {
		binaries, err := harness.BinariesFromEnv()
		Expect(err).NotTo(HaveOccurred())
		runDir, err = os.MkdirTemp("", "deltapipeline-e2e-ingress-")
		Expect(err).NotTo(HaveOccurred())

		By("making a test CA and a gateway certificate for the loopback address")
		ca, err := pipelinetest.NewTestCA()
		Expect(err).NotTo(HaveOccurred())
		crt, key, err := ca.Issue("127.0.0.1", "localhost")
		Expect(err).NotTo(HaveOccurred())
		caFile = filepath.Join(runDir, "ca.crt")
		Expect(os.WriteFile(caFile, ca.CertPEM, 0o600)).To(Succeed())
		roots = x509.NewCertPool()
		Expect(roots.AppendCertsFromPEM(ca.CertPEM)).To(BeTrue())
		tokenFile = filepath.Join(runDir, "team-b.token")
		Expect(os.WriteFile(tokenFile, []byte("team-b-token\n"), 0o600)).To(Succeed())

		secret := func(name string, typ corev1.SecretType, data map[string][]byte) *corev1.Secret {
			return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, Type: typ, Data: data}
		}
		pipeline, err = harness.Start(ctx,
			harness.WithDir(runDir),
			harness.WithCRDDir(crdDir()),
			harness.WithBinaries(binaries),
			harness.WithGateways(2),
			harness.WithWorkers(2),
			harness.WithConversionInterval(time.Second),
			harness.WithLog(GinkgoWriter),
			harness.WithSecrets(
				secret("gateway-tls", corev1.SecretTypeTLS, map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: key}),
				secret("team-a", corev1.SecretTypeOpaque, map[string][]byte{"token": []byte("team-a-token")}),
				secret("team-b", corev1.SecretTypeOpaque, map[string][]byte{"token": []byte("team-b-token")}),
			),
			harness.WithPipeline(func(p *v1alpha1.DeltaPipeline) {
				p.Spec.Gateway.TLS = &v1alpha1.GatewayTLSSpec{SecretName: "gateway-tls"}
				p.Spec.Gateway.Auth = &v1alpha1.GatewayAuthSpec{BearerTokens: []v1alpha1.SecretKeyRef{
					{Name: "team-a", Key: "token"}, {Name: "team-b", Key: "token"},
				}}
			}),
		)
		Expect(err).NotTo(HaveOccurred())
	}, NodeTimeout(3*time.Minute))

	stopAfterAll(&pipeline, &runDir)

	gatewaySum := func(ctx context.Context, name string, match map[string]string) float64 {
		var total float64
		for _, g := range pipeline.Gateways {
			m, err := harness.ScrapeMetrics(ctx, g.MetricsURL)
			Expect(err).NotTo(HaveOccurred())
			total += m.Sum(name, match)
		}
		return total
	}
	exportRequest := func() pmetricotlp.ExportRequest {
		md := pmetric.NewMetrics()
		m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
		m.SetName("probe.points")
		sum := m.SetEmptySum()
		sum.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
		sum.SetIsMonotonic(true)
		sum.DataPoints().AppendEmpty().SetIntValue(1)
		return pmetricotlp.NewExportRequestFromMetrics(md)
	}
	postHTTP := func(ctx context.Context, client *http.Client, url, authorization string) int {
		body, err := exportRequest().MarshalProto()
		Expect(err).NotTo(HaveOccurred())
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		Expect(err).NotTo(HaveOccurred())
		req.Header.Set("Content-Type", "application/x-protobuf")
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		resp, err := client.Do(req)
		Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	exportGRPC := func(ctx context.Context, endpoint string, creds credentials.TransportCredentials, authorization string) error {
		conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(creds))
		Expect(err).NotTo(HaveOccurred())
		defer conn.Close()
		if authorization != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", authorization)
		}
		_, err = pmetricotlp.NewGRPCClient(conn).Export(ctx, exportRequest())
		return err
	}

	It("renders TLS and the authenticator on both receivers and mounts the Secrets' files", func() {
		Expect(pipeline.Rendered.Gateway).To(ContainSubstring("authenticator: bearertokenauth/clients"))
		Expect(pipeline.Rendered.Gateway).To(ContainSubstring("cert_file: " + manifests.GatewayTLSDir + "/tls.crt"))
		tokens, err := os.ReadFile(pipeline.GatewayFiles.Path(manifests.GatewayClientTokensDir + "/" + manifests.GatewayClientTokensFile))
		Expect(err).NotTo(HaveOccurred())
		Expect(string(tokens)).To(Equal("team-a-token\nteam-b-token\n"))
		gatewayToken, err := os.ReadFile(pipeline.GatewayFiles.Path(manifests.WorkerTokenPath))
		Expect(err).NotTo(HaveOccurred())
		workerToken, err := os.ReadFile(pipeline.WorkerFiles.Path(manifests.WorkerTokenPath))
		Expect(err).NotTo(HaveOccurred())
		Expect(gatewayToken).To(HaveLen(43))
		Expect(gatewayToken).To(Equal(workerToken), "gateways and workers mount the same token")
	})

	It("delivers every series' exact total from clients with a valid token over TLS verified against the test CA", func(ctx SpecContext) {
		run, err := pipeline.StartLoad(harness.Load{
			Name: "authenticated", Sessions: 20, SharedSessions: 4, Rounds: 6, ExportInterval: time.Second, Seed: 7,
			CAFile: caFile, BearerTokenFile: tokenFile, NoRetry: true,
		})
		Expect(err).NotTo(HaveOccurred())
		sent, err := run.Wait(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(sent.FailedExports).To(BeZero(), "a client that never retries lost no export")

		report := pipeline.WaitForTotals(ctx, sent, convergeTimeout)
		fmt.Fprintf(GinkgoWriter, "FIGURES authenticated over TLS: %s\n", report.Figures())
		Expect(report.Problems()).To(BeEmpty())
		Expect(report.ExactMatches).To(Equal(report.SentSeries))
		Expect(report.SentSeries).To(BeNumerically(">=", 300))
		Expect(pipeline.Status(ctx).GatewayAcceptedPoints).To(Equal(float64(sent.Points)))
	}, SpecTimeout(3*time.Minute))

	It("refuses clients without a valid token, 401 over HTTP and UNAUTHENTICATED over gRPC, and counts them", func(ctx SpecContext) {
		g := pipeline.Gateways[0]
		httpsClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}
		url := "https://" + g.OTLPHTTPEndpoint + "/v1/metrics"
		tlsCreds := credentials.NewTLS(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})
		refusedHTTPBefore := gatewaySum(ctx, gatewayHTTPRequests, map[string]string{"http_response_status_code": "401"})
		acceptedBefore := pipeline.Status(ctx).GatewayAcceptedPoints

		By("OTLP/HTTP without a token, with an unknown token and with a valid one")
		Expect(postHTTP(ctx, httpsClient, url, "")).To(Equal(http.StatusUnauthorized))
		Expect(postHTTP(ctx, httpsClient, url, "Bearer not-a-team-token")).To(Equal(http.StatusUnauthorized))
		Expect(postHTTP(ctx, httpsClient, url, "Bearer team-a-token")).To(Equal(http.StatusOK))

		By("OTLP/gRPC without a token, with an unknown token and with a valid one")
		Expect(status.Code(exportGRPC(ctx, g.OTLPEndpoint, tlsCreds, ""))).To(Equal(codes.Unauthenticated))
		Expect(status.Code(exportGRPC(ctx, g.OTLPEndpoint, tlsCreds, "Bearer not-a-team-token"))).To(Equal(codes.Unauthenticated))
		Expect(exportGRPC(ctx, g.OTLPEndpoint, tlsCreds, "Bearer team-b-token")).To(Succeed())

		By("a plaintext client, which the TLS listener does not answer as OTLP")
		Expect(exportGRPC(ctx, g.OTLPEndpoint, insecure.NewCredentials(), "Bearer team-b-token")).To(HaveOccurred())

		By("counting the refusals in the gateway's server metrics and accepting only the two authenticated points")
		Eventually(func() float64 {
			return gatewaySum(ctx, gatewayHTTPRequests, map[string]string{"http_response_status_code": "401"}) - refusedHTTPBefore
		}).WithContext(ctx).Should(Equal(2.0))
		Eventually(func() float64 {
			return gatewaySum(ctx, gatewayGRPCCalls, map[string]string{"rpc_response_status_code": "UNAUTHENTICATED"})
		}).WithContext(ctx).Should(Equal(2.0))
		Eventually(func() float64 { return pipeline.Status(ctx).GatewayAcceptedPoints - acceptedBefore }).WithContext(ctx).Should(Equal(2.0))
	}, SpecTimeout(time.Minute))

	It("takes a rotated token without a restart: the new one is accepted, the old one refused", func(ctx SpecContext) {
		g := pipeline.Gateways[1]
		httpsClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}
		url := "https://" + g.OTLPHTTPEndpoint + "/v1/metrics"
		pid := g.Pid()

		var teamA corev1.Secret
		Expect(pipeline.ControlPlane.Client.Get(ctx, types.NamespacedName{Namespace: pipeline.Namespace, Name: "team-a"}, &teamA)).To(Succeed())
		teamA.Data["token"] = []byte("team-a-token-2")
		Expect(pipeline.ControlPlane.Client.Update(ctx, &teamA)).To(Succeed())

		By("waiting for the operator to rewrite the gathered tokens, then refreshing the files as the kubelet does")
		Eventually(func() (string, error) {
			var s corev1.Secret
			err := pipeline.ControlPlane.Client.Get(ctx, types.NamespacedName{Namespace: pipeline.Namespace, Name: naming.GatewayClientTokensSecret(pipeline.Object)}, &s)
			return string(s.Data[manifests.GatewayClientTokensFile]), err
		}).WithContext(ctx).Should(Equal("team-a-token-2\nteam-b-token\n"))
		Expect(pipeline.GatewayFiles.Sync(ctx, pipeline.ControlPlane.Client, pipeline.Namespace)).To(Succeed())

		Eventually(func() int { return postHTTP(ctx, httpsClient, url, "Bearer team-a-token-2") }).WithContext(ctx).Should(Equal(http.StatusOK))
		Expect(postHTTP(ctx, httpsClient, url, "Bearer team-a-token")).To(Equal(http.StatusUnauthorized))
		Expect(postHTTP(ctx, httpsClient, url, "Bearer team-b-token")).To(Equal(http.StatusOK), "the other team's token is untouched")
		Expect(g.Pid()).To(Equal(pid), "the gateway was not restarted")
	}, SpecTimeout(time.Minute))

	It("lets no one but the gateways write into a worker: a request without the gateway token is refused and counted", func(ctx SpecContext) {
		w := pipeline.Workers[0]
		plain := &http.Client{Timeout: 10 * time.Second}
		// The gateways answer once a request is queued; what earlier specs
		// sent must reach the workers before the worker's count is taken.
		Eventually(func(g Gomega) {
			var accepted, received float64
			for _, gw := range pipeline.Gateways {
				m, err := harness.ScrapeMetrics(ctx, gw.MetricsURL)
				g.Expect(err).NotTo(HaveOccurred())
				accepted += m.Sum("otelcol_receiver_accepted_metric_points", nil)
			}
			for _, wk := range pipeline.Workers {
				m, err := harness.ScrapeMetrics(ctx, wk.MetricsURL())
				g.Expect(err).NotTo(HaveOccurred())
				received += m.Sum(workerReceivedPoints, nil)
			}
			g.Expect(received).To(Equal(accepted))
		}).WithContext(ctx).Should(Succeed(), "the gateways delivered what they accepted")
		before, err := harness.ScrapeMetrics(ctx, w.MetricsURL())
		Expect(err).NotTo(HaveOccurred())
		Expect(postHTTP(ctx, plain, "http://"+w.OTLPHTTPEndpoint+"/v1/metrics", "")).To(Equal(http.StatusUnauthorized))
		Expect(postHTTP(ctx, plain, "http://"+w.OTLPHTTPEndpoint+"/v1/metrics", "Bearer team-a-token-2")).To(Equal(http.StatusUnauthorized), "a client token is not the gateway token")
		Expect(status.Code(exportGRPC(ctx, w.OTLPEndpoint, insecure.NewCredentials(), ""))).To(Equal(codes.Unauthenticated))

		m, err := harness.ScrapeMetrics(ctx, w.MetricsURL())
		Expect(err).NotTo(HaveOccurred())
		Expect(m.Sum(workerUnauthenticatedTotal, map[string]string{"transport": "http"})).To(Equal(2.0))
		Expect(m.Sum(workerUnauthenticatedTotal, map[string]string{"transport": "grpc"})).To(Equal(1.0))
		Expect(m.Sum(workerReceivedPoints, nil)).To(Equal(before.Sum(workerReceivedPoints, nil)), "no point of the refused requests was read")
		for i, other := range pipeline.Workers[1:] {
			m, err := harness.ScrapeMetrics(ctx, other.MetricsURL())
			Expect(err).NotTo(HaveOccurred())
			Expect(m.Sum(workerUnauthenticatedTotal, nil)).To(BeZero(), "worker %d refused a gateway's request", i+1)
		}
	}, SpecTimeout(time.Minute))
})
