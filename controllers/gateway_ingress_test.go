package controllers

import (
	"context"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/manifests"
	"github.com/deltapipeline/deltapipeline/internal/naming"
	"github.com/deltapipeline/deltapipeline/internal/pipelinetest"
	"github.com/deltapipeline/deltapipeline/internal/workerconfig"
)

var _ = Describe("Gateway ingress: TLS, client authentication and the gateway-to-worker token", func() {
	var (
		ctx context.Context
		ns  string
	)
	BeforeEach(func() {
		ctx = context.Background()
		ns = createNamespace(ctx)
	})

	createSecret := func(name string, typ corev1.SecretType, data map[string][]byte) *corev1.Secret {
		GinkgoHelper()
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Type: typ, Data: data}
		Expect(k8sClient.Create(ctx, s)).To(Succeed())
		return s
	}
	gatewayConfig := func(p *v1alpha1.DeltaPipeline) func() (string, error) {
		return func() (string, error) {
			cm, err := fetch(ctx, p, &corev1.ConfigMap{}, naming.GatewayConfigMap(p))
			return cm.Data[manifests.GatewayConfigFile], err
		}
	}
	validTLS := func() map[string][]byte {
		GinkgoHelper()
		ca, err := pipelinetest.NewTestCA()
		Expect(err).NotTo(HaveOccurred())
		crt, key, err := ca.Issue("claude-gateway." + ns + ".svc")
		Expect(err).NotTo(HaveOccurred())
		return map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: key}
	}
	workerTokenOf := func(p *v1alpha1.DeltaPipeline) func() (string, error) {
		return func() (string, error) {
			s, err := fetch(ctx, p, &corev1.Secret{}, naming.WorkerTokenSecret(p))
			return string(s.Data[manifests.WorkerTokenFile]), err
		}
	}
	gatewayPodHash := func(p *v1alpha1.DeltaPipeline) func() (string, error) {
		return func() (string, error) {
			d, err := fetch(ctx, p, &appsv1.Deployment{}, naming.GatewayDeployment(p))
			return d.Spec.Template.Annotations[naming.ConfigHashAnnotation], err
		}
	}

	Context("the gateway-to-worker token", func() {
		It("is generated once, mounted into both tiers, sent by the gateways and required by the workers", func() {
			p := createPipeline(ctx, pipelinetest.New("claude", ns))
			waitForObjects(ctx, p)
			Eventually(workerTokenOf(p)).Should(HaveLen(43), "32 random bytes, base64url without padding")
			token, _ := workerTokenOf(p)()
			s, err := fetch(ctx, p, &corev1.Secret{}, naming.WorkerTokenSecret(p))
			Expect(err).NotTo(HaveOccurred())
			expectControlledBy(s, p)

			d, err := fetch(ctx, p, &appsv1.Deployment{}, naming.GatewayDeployment(p))
			Expect(err).NotTo(HaveOccurred())
			Expect(d.Spec.Template.Spec.Volumes).To(ContainElement(HaveField("Secret.SecretName", naming.WorkerTokenSecret(p))))
			Expect(d.Spec.Template.Spec.Containers[0].VolumeMounts).To(ContainElement(HaveField("MountPath", manifests.WorkerTokenMountPath)))
			Eventually(gatewayConfig(p)).Should(ContainSubstring("bearer_token_file: " + manifests.WorkerTokenPath))
			Expect(gatewayConfig(p)()).NotTo(ContainSubstring(token), "the token never goes into a ConfigMap")

			sts, err := fetch(ctx, p, &appsv1.StatefulSet{}, naming.WorkerStatefulSet(p))
			Expect(err).NotTo(HaveOccurred())
			Expect(sts.Spec.Template.Spec.Containers[0].VolumeMounts).To(ContainElement(HaveField("MountPath", manifests.WorkerTokenMountPath)))
			cm, err := fetch(ctx, p, &corev1.ConfigMap{}, naming.WorkerConfigMap(p))
			Expect(err).NotTo(HaveOccurred())
			var wc workerconfig.Config
			Expect(yaml.Unmarshal([]byte(cm.Data[manifests.WorkerConfigKey]), &wc)).To(Succeed())
			Expect(wc.Receivers.OTLP.AuthTokenFile).To(Equal(manifests.WorkerTokenPath))

			By("keeping the token over reconciles")
			eventuallyWritesNothing(ctx, p)
			Expect(workerTokenOf(p)()).To(Equal(token))

			By("making a new one, and rolling the gateways onto it, when the Secret is deleted")
			hash, _ := gatewayPodHash(p)()
			Expect(k8sClient.Delete(ctx, s)).To(Succeed())
			Eventually(workerTokenOf(p)).Should(And(HaveLen(43), Not(Equal(token))))
			Eventually(gatewayPodHash(p)).ShouldNot(Equal(hash))

			By("making a new one when the token is emptied")
			hash, _ = gatewayPodHash(p)()
			s, err = fetch(ctx, p, &corev1.Secret{}, naming.WorkerTokenSecret(p))
			Expect(err).NotTo(HaveOccurred())
			s.Data[manifests.WorkerTokenFile] = nil
			Expect(k8sClient.Update(ctx, s)).To(Succeed())
			Eventually(workerTokenOf(p)).Should(HaveLen(43))
			Eventually(gatewayPodHash(p)).ShouldNot(Equal(hash))
		})

		It("is removed with spec.worker.authentication.enabled false, and the workers accept any sender", func() {
			p := createPipeline(ctx, pipelinetest.New("claude", ns))
			waitForObject(ctx, p, &corev1.Secret{}, naming.WorkerTokenSecret(p))
			updatePipeline(ctx, p, func(p *v1alpha1.DeltaPipeline) { p.Spec.Worker.Authentication.Enabled = new(bool) })
			waitForDeletion(ctx, p, &corev1.Secret{}, naming.WorkerTokenSecret(p))
			Eventually(gatewayConfig(p)).ShouldNot(ContainSubstring("authorization"))
			Eventually(func(g Gomega) {
				sts, err := fetch(ctx, p, &appsv1.StatefulSet{}, naming.WorkerStatefulSet(p))
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(secretVolumes(sts.Spec.Template.Spec.Volumes)).NotTo(ContainElement(naming.WorkerTokenSecret(p)))
				cm, err := fetch(ctx, p, &corev1.ConfigMap{}, naming.WorkerConfigMap(p))
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(cm.Data[manifests.WorkerConfigKey]).NotTo(ContainSubstring("authTokenFile"))
			}).Should(Succeed())
		})
	})

	Context("spec.gateway.tls", func() {
		const secretName = "claude-gateway-tls"

		It("names the missing Secret, its wrong type, a missing key and unparsable PEM, and serves TLS once the Secret is right", func() {
			p := createPipeline(ctx, pipelinetest.New("claude", ns, pipelinetest.WithGatewayTLS(secretName)))
			Eventually(condition(ctx, p, v1alpha1.ConditionReferencesResolved)).Should(haveCondition(ctx, p, metav1.ConditionFalse, v1alpha1.ReasonSecretNotFound))
			Expect(condition(ctx, p, v1alpha1.ConditionReferencesResolved)().Message).To(And(ContainSubstring(`"`+secretName+`"`), ContainSubstring("spec.gateway.tls.secretName")))
			Eventually(warningEvents(ctx, p, v1alpha1.ReasonSecretNotFound)).Should(ContainElement(ContainSubstring(secretName)))

			By("running no gateway on a certificate that does not exist, while the workers run")
			waitForObject(ctx, p, &appsv1.StatefulSet{}, naming.WorkerStatefulSet(p))
			_, err := fetch(ctx, p, &appsv1.Deployment{}, naming.GatewayDeployment(p))
			Expect(apierrors.IsNotFound(err)).To(BeTrue(), "gateway Deployment: %v", err)

			By("an Opaque Secret")
			s := createSecret(secretName, corev1.SecretTypeOpaque, validTLS())
			Eventually(condition(ctx, p, v1alpha1.ConditionReferencesResolved)).Should(haveCondition(ctx, p, metav1.ConditionFalse, v1alpha1.ReasonSecretTypeMismatch))
			Expect(condition(ctx, p, v1alpha1.ConditionReferencesResolved)().Message).To(ContainSubstring("kubernetes.io/tls"))
			Expect(k8sClient.Delete(ctx, s)).To(Succeed())

			By("an empty tls.key")
			data := validTLS()
			data[corev1.TLSPrivateKeyKey] = []byte{}
			s = createSecret(secretName, corev1.SecretTypeTLS, data)
			Eventually(condition(ctx, p, v1alpha1.ConditionReferencesResolved)).Should(haveCondition(ctx, p, metav1.ConditionFalse, v1alpha1.ReasonSecretKeyNotFound))
			Expect(condition(ctx, p, v1alpha1.ConditionReferencesResolved)().Message).To(ContainSubstring(`"tls.key"`))

			By("PEM that does not parse")
			s.Data = map[string][]byte{corev1.TLSCertKey: []byte("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"), corev1.TLSPrivateKeyKey: validTLS()[corev1.TLSPrivateKeyKey]}
			Expect(k8sClient.Update(ctx, s)).To(Succeed())
			Eventually(condition(ctx, p, v1alpha1.ConditionReferencesResolved)).Should(haveCondition(ctx, p, metav1.ConditionFalse, v1alpha1.ReasonInvalidTLSCertificate))
			Expect(condition(ctx, p, v1alpha1.ConditionReferencesResolved)().Message).To(ContainSubstring("spec.gateway.tls.secretName"))

			By("a certificate and its key")
			s.Data = validTLS()
			Expect(k8sClient.Update(ctx, s)).To(Succeed())
			Eventually(condition(ctx, p, v1alpha1.ConditionReferencesResolved)).Should(haveCondition(ctx, p, metav1.ConditionTrue, v1alpha1.ReasonResolved))
			waitForObject(ctx, p, &appsv1.Deployment{}, naming.GatewayDeployment(p))
			Eventually(gatewayConfig(p)).Should(And(
				ContainSubstring("cert_file: "+manifests.GatewayTLSDir+"/tls.crt"),
				ContainSubstring("reload_interval: 1m")))
			d, err := fetch(ctx, p, &appsv1.Deployment{}, naming.GatewayDeployment(p))
			Expect(err).NotTo(HaveOccurred())
			Expect(d.Spec.Template.Spec.Volumes).To(ContainElement(HaveField("Secret.SecretName", secretName)))

			By("not rolling the gateways when the certificate is renewed: the collector re-reads it")
			hash, _ := gatewayPodHash(p)()
			s.Data = validTLS()
			Expect(k8sClient.Update(ctx, s)).To(Succeed())
			Consistently(gatewayPodHash(p)).Should(Equal(hash))
			eventuallyWritesNothing(ctx, p)
		})
	})

	Context("spec.gateway.auth.bearerTokens", func() {
		It("names a missing Secret, a missing key and a malformed token, then gathers the tokens into one file without rolling the gateways on a change", func() {
			p := createPipeline(ctx, pipelinetest.New("claude", ns, pipelinetest.WithGatewayBearerTokens(
				v1alpha1.SecretKeyRef{Name: "team-a", Key: "token"}, v1alpha1.SecretKeyRef{Name: "team-b", Key: "token"})))
			Eventually(condition(ctx, p, v1alpha1.ConditionReferencesResolved)).Should(haveCondition(ctx, p, metav1.ConditionFalse, v1alpha1.ReasonSecretNotFound))
			Expect(condition(ctx, p, v1alpha1.ConditionReferencesResolved)().Message).To(And(ContainSubstring(`"team-a"`), ContainSubstring("spec.gateway.auth.bearerTokens[0]")))

			createSecret("team-a", corev1.SecretTypeOpaque, map[string][]byte{"token": []byte("alpha-token\n")})
			Eventually(func() string { return condition(ctx, p, v1alpha1.ConditionReferencesResolved)().Message }).Should(ContainSubstring("spec.gateway.auth.bearerTokens[1]"))
			b := createSecret("team-b", corev1.SecretTypeOpaque, map[string][]byte{"other": []byte("x")})
			Eventually(condition(ctx, p, v1alpha1.ConditionReferencesResolved)).Should(haveCondition(ctx, p, metav1.ConditionFalse, v1alpha1.ReasonSecretKeyNotFound))
			Expect(condition(ctx, p, v1alpha1.ConditionReferencesResolved)().Message).To(ContainSubstring(`has no key "token"`))

			b.Data = map[string][]byte{"token": []byte("two words")}
			Expect(k8sClient.Update(ctx, b)).To(Succeed())
			Eventually(condition(ctx, p, v1alpha1.ConditionReferencesResolved)).Should(haveCondition(ctx, p, metav1.ConditionFalse, v1alpha1.ReasonInvalidBearerToken))
			Expect(condition(ctx, p, v1alpha1.ConditionReferencesResolved)().Message).To(ContainSubstring("whitespace"))

			b.Data = map[string][]byte{"token": []byte("bravo-token")}
			Expect(k8sClient.Update(ctx, b)).To(Succeed())
			Eventually(condition(ctx, p, v1alpha1.ConditionReferencesResolved)).Should(haveCondition(ctx, p, metav1.ConditionTrue, v1alpha1.ReasonResolved))
			tokensOf := func() (string, error) {
				s, err := fetch(ctx, p, &corev1.Secret{}, naming.GatewayClientTokensSecret(p))
				return string(s.Data[manifests.GatewayClientTokensFile]), err
			}
			Eventually(tokensOf).Should(Equal("alpha-token\nbravo-token\n"))
			Eventually(gatewayConfig(p)).Should(And(
				ContainSubstring("authenticator: bearertokenauth/clients"),
				ContainSubstring("filename: "+manifests.GatewayClientTokensDir+"/"+manifests.GatewayClientTokensFile)))
			Expect(gatewayConfig(p)()).NotTo(ContainSubstring("alpha-token"))

			By("rotating team b's token: the file changes, the gateway pods do not")
			hash, _ := gatewayPodHash(p)()
			b.Data = map[string][]byte{"token": []byte("bravo-token-2")}
			Expect(k8sClient.Update(ctx, b)).To(Succeed())
			Eventually(tokensOf).Should(Equal("alpha-token\nbravo-token-2\n"))
			Expect(gatewayPodHash(p)()).To(Equal(hash))
			eventuallyWritesNothing(ctx, p)

			By("deleting the tokens Secret with bearer tokens turned off")
			updatePipeline(ctx, p, func(p *v1alpha1.DeltaPipeline) { p.Spec.Gateway.Auth = nil })
			waitForDeletion(ctx, p, &corev1.Secret{}, naming.GatewayClientTokensSecret(p))
			Eventually(gatewayConfig(p)).ShouldNot(ContainSubstring("bearertokenauth"))
		})
	})

	Context("spec.gateway.auth.oidc", func() {
		It("renders the oidc authenticator for both receivers", func() {
			p := createPipeline(ctx, pipelinetest.New("claude", ns, pipelinetest.WithGatewayOIDC("https://login.example.com/realms/dev", "claude-code")))
			Eventually(gatewayConfig(p)).Should(And(
				ContainSubstring("issuer_url: https://login.example.com/realms/dev"),
				ContainSubstring("audience: claude-code")))
			cfg, _ := gatewayConfig(p)()
			Expect(strings.Count(cfg, "authenticator: oidc/clients")).To(Equal(2), "gRPC and HTTP")
		})

		DescribeTable("refuses what is not an https issuer, and both modes at once, with a message naming the field",
			func(want string, opt pipelinetest.Option) {
				err := k8sClient.Create(ctx, pipelinetest.New("claude", ns, opt))
				Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want an Invalid error, got %v", err)
				Expect(err.Error()).To(ContainSubstring(want))
			},
			Entry("an http issuer", "spec.gateway.auth.oidc.issuerURL must be an https URL", pipelinetest.WithGatewayOIDC("http://login.example.com", "aud")),
			Entry("an issuer that is not a URL", "spec.gateway.auth.oidc.issuerURL must be an https URL", pipelinetest.WithGatewayOIDC("login.example.com", "aud")),
			Entry("no audience", "spec.gateway.auth.oidc.audience", pipelinetest.WithGatewayOIDC("https://login.example.com", "")),
			Entry("bearer tokens and oidc", "set exactly one of bearerTokens and oidc", func(p *v1alpha1.DeltaPipeline) {
				p.Spec.Gateway.Auth = &v1alpha1.GatewayAuthSpec{
					BearerTokens: []v1alpha1.SecretKeyRef{{Name: "a", Key: "t"}},
					OIDC:         &v1alpha1.OIDCSpec{IssuerURL: "https://login.example.com", Audience: "aud"},
				}
			}),
			Entry("neither", "set exactly one of bearerTokens and oidc", func(p *v1alpha1.DeltaPipeline) { p.Spec.Gateway.Auth = &v1alpha1.GatewayAuthSpec{} }),
			Entry("an empty TLS Secret name", "spec.gateway.tls.secretName", pipelinetest.WithGatewayTLS("")),
		)
	})
})

// secretVolumes are the names of the Secrets a pod mounts.
func secretVolumes(volumes []corev1.Volume) []string {
	var names []string
	for _, v := range volumes {
		if v.Secret != nil {
			names = append(names, v.Secret.SecretName)
		}
	}
	return names
}
