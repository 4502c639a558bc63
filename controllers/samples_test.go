package controllers

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
)

var _ = Describe("config/samples", func() {
	samplesDir := filepath.Join("..", "config", "samples")

	DescribeTable("are accepted by the API server with the CRD installed",
		func(file string) {
			ctx := context.Background()
			ns := createNamespace(ctx)
			data, err := os.ReadFile(filepath.Join(samplesDir, file))
			Expect(err).NotTo(HaveOccurred())

			sample := &unstructured.Unstructured{}
			Expect(yaml.Unmarshal(data, &sample.Object)).To(Succeed(), "parsing %s", file)
			Expect(sample.GroupVersionKind()).To(Equal(v1alpha1.GroupVersion.WithKind("DeltaPipeline")))
			sample.SetNamespace(ns)

			// Strict field validation refuses unknown or misspelled fields
			// instead of silently dropping them.
			Expect(k8sClient.Create(ctx, sample, client.DryRunAll, client.FieldValidation("Strict"))).To(Succeed(), "creating %s", file)

			var stored v1alpha1.DeltaPipeline
			err = k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: sample.GetName()}, &stored)
			Expect(apierrors.IsNotFound(err)).To(BeTrue(), "a dry run must not store the pipeline: %v", err)
		},
		Entry("Claude Code to Amazon Managed Service for Prometheus", "telemetry_v1alpha1_deltapipeline_claudecode_amp.yaml"),
		Entry("OTLP", "telemetry_v1alpha1_deltapipeline_otlp.yaml"),
	)

	It("include the pipelines of the API reference, which the API server accepts", func() {
		ctx := context.Background()
		ns := createNamespace(ctx)
		doc, err := os.ReadFile(filepath.Join("..", "docs", "api.md"))
		Expect(err).NotTo(HaveOccurred())
		examples := regexp.MustCompile(`(?s)<<'YAML'\n(.*?)\nYAML\n`).FindAllSubmatch(doc, -1)
		Expect(examples).NotTo(BeEmpty(), "docs/api.md has no kubectl apply examples")
		for _, example := range examples {
			pipeline := &unstructured.Unstructured{}
			Expect(yaml.Unmarshal(example[1], &pipeline.Object)).To(Succeed(), "parsing %s", example[1])
			pipeline.SetNamespace(ns)
			Expect(k8sClient.Create(ctx, pipeline, client.DryRunAll, client.FieldValidation("Strict"))).To(Succeed(), "creating %s", example[1])
		}
	})

	It("are accepted by kubectl apply --dry-run=server through their kustomization", func() {
		ctx := context.Background()
		ns := createNamespace(ctx)
		// make envtest builds kubectl next to kube-apiserver.
		kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
		Expect(kubectl).To(BeAnExistingFile(), "run `make envtest`, which builds kubectl into KUBEBUILDER_ASSETS")
		kubeconfig := filepath.Join(GinkgoT().TempDir(), "kubeconfig")
		Expect(os.WriteFile(kubeconfig, testEnv.KubeConfig, 0o600)).To(Succeed())

		cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "apply", "--dry-run=server", "--namespace", ns, "-k", samplesDir)
		out, err := cmd.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), "kubectl apply --dry-run=server -k config/samples:\n%s", out)
		Expect(string(out)).To(And(
			ContainSubstring("deltapipeline.telemetry.deltapipeline.io/claude-code created (server dry run)"),
			ContainSubstring("deltapipeline.telemetry.deltapipeline.io/otlp created (server dry run)"),
		))
	})

	It("are all listed in the kustomization", func() {
		data, err := os.ReadFile(filepath.Join(samplesDir, "kustomization.yaml"))
		Expect(err).NotTo(HaveOccurred())
		var kustomization struct {
			Resources []string `json:"resources"`
		}
		Expect(yaml.Unmarshal(data, &kustomization)).To(Succeed())
		files, err := filepath.Glob(filepath.Join(samplesDir, "telemetry_*.yaml"))
		Expect(err).NotTo(HaveOccurred())
		var names []string
		for _, f := range files {
			names = append(names, filepath.Base(f))
		}
		Expect(kustomization.Resources).To(ConsistOf(names))
	})
})
