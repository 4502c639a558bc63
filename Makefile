# DeltaPipeline: operator, worker and their tooling.
# `make help` lists the targets.

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
IMG_REGISTRY ?= ghcr.io/deltapipeline
MANAGER_IMG ?= $(IMG_REGISTRY)/deltapipeline-operator:$(VERSION)
WORKER_IMG ?= $(IMG_REGISTRY)/deltapipeline-worker:$(VERSION)
GATEWAY_IMG ?= $(IMG_REGISTRY)/deltapipeline-gateway:$(VERSION)
CONTAINER_TOOL ?= docker

GO ?= go
# Every Go build and test uses the flags of the release binaries (static,
# trimmed), so that the tests and the binaries of this module share one build
# cache: a first `make test` compiles each dependency once, not once per flag
# set. Set CGO_ENABLED=1 on the command line for `go test -race`.
export CGO_ENABLED ?= 0
export GOFLAGS ?= -trimpath
LOCALBIN ?= $(CURDIR)/bin
export PATH := $(LOCALBIN):$(PATH)

# Tool versions, installed into ./bin with `go install`.
CONTROLLER_TOOLS_VERSION ?= v0.23.0
HELM_VERSION ?= v3.22.0
GOLANGCI_LINT_VERSION ?= v2.15.0

# Control plane used by envtest, built from the Go module proxy (see hack/envtest).
ENVTEST_K8S_VERSION ?= 1.37.2
ENVTEST_ETCD_VERSION ?= 3.6.16
ENVTEST_ASSETS_DIR ?= $(LOCALBIN)/k8s/$(ENVTEST_K8S_VERSION)-linux-amd64
export KUBEBUILDER_ASSETS ?= $(ENVTEST_ASSETS_DIR)

MODULE := github.com/deltapipeline/deltapipeline
VERSION_LDFLAGS := -X $(MODULE)/internal/version.Version=$(VERSION)
CHART_DIR ?= charts/deltapipeline-operator

# kubectl for the cluster targets (install, deploy, ...) is the user's own;
# the tests and build-installer use the pinned one from `make envtest`.
KUBECTL ?= kubectl
PINNED_KUBECTL ?= $(ENVTEST_ASSETS_DIR)/kubectl
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
HELM ?= $(LOCALBIN)/helm
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint

# The chart's optional ServiceMonitor is dry-run against the real
# prometheus-operator CRD, taken from the module proxy.
PROMETHEUS_OPERATOR_VERSION ?= v0.85.0
SERVICEMONITOR_CRD_SOURCE := github.com/prometheus-operator/prometheus-operator@$(PROMETHEUS_OPERATOR_VERSION) example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml
# The same for the operator's PodMonitors (envtest specs of controllers/) and
# the chart's optional PrometheusRule (alert rules).
PODMONITOR_CRD_SOURCE := github.com/prometheus-operator/prometheus-operator@$(PROMETHEUS_OPERATOR_VERSION) example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml
PROMETHEUSRULE_CRD_SOURCE := github.com/prometheus-operator/prometheus-operator@$(PROMETHEUS_OPERATOR_VERSION) example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml

# CI runs every test every time; locally the Go test cache is welcome.
GO_TEST_FLAGS ?=
ifeq ($(CI),true)
GO_TEST_FLAGS += -count=1
endif

# `make test` runs each of these in order. Append a check with
# `TEST_TARGETS += my-check` next to the target that defines it.
TEST_TARGETS := verify-generated verify-tidy vet lint go-test test-gateway chart-test
# Appended here, before the test rule reads the list (prerequisites are
# expanded when a rule is read): the alert rules' promtool checks and the
# end-to-end checks.
TEST_TARGETS += alert-rules validate-gateway-configs e2e dashboards-test
# A short run of every fuzz target.
TEST_TARGETS += fuzz
# The operator on a real single-node cluster (test/cluster).
TEST_TARGETS += test-cluster

.DEFAULT_GOAL := help

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-20s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate CRDs and the manager ClusterRole from the API and RBAC markers; copy both into the Helm chart.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd webhook paths="./..." output:crd:artifacts:config=config/crd/bases
	mkdir -p $(CHART_DIR)/crds $(CHART_DIR)/files
	rm -f $(CHART_DIR)/crds/*.yaml
	cp config/crd/bases/*.yaml $(CHART_DIR)/crds/
	hack/tools/chart-rbac-rules.sh config/rbac/role.yaml > $(CHART_DIR)/files/manager-rbac-rules.yaml

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods for the API types.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./..."

.PHONY: fmt
fmt: ## Run go fmt on the module.
	$(GO) fmt ./...

.PHONY: vet
vet: ## Run go vet on the module and on the gateway's (cmd/gateway).
	$(GO) vet ./...
	cd cmd/gateway && GOWORK=off $(GO) vet ./...

.PHONY: lint
lint: golangci-lint ## Run golangci-lint (.golangci.yml) on the module and on the gateway's.
	$(GOLANGCI_LINT) run ./...
	cd cmd/gateway && GOWORK=off $(GOLANGCI_LINT) run --config ../../.golangci.yml ./...

.PHONY: verify-tidy
verify-tidy: ## Fail when `go mod tidy` would change go.mod or go.sum, of the module or of the gateway's.
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run 'go mod tidy'"; exit 1; }
	@cd cmd/gateway && GOWORK=off $(GO) mod tidy -diff || { echo "cmd/gateway/go.mod/go.sum are not tidy: run 'cd cmd/gateway && go mod tidy'"; exit 1; }

.PHONY: verify-generated
verify-generated: ## Fail when `make generate manifests dashboards` would change CRDs, the chart's CRDs/RBAC/dashboards/alert rules or zz_generated files.
	hack/tools/verify-generated.sh $(MAKE) generate manifests dashboards

# The promtool unit tests of the alert rules, written with the rules.
ALERT_RULE_TESTS ?= test/alerts/alert-rules.test.yaml

.PHONY: dashboards
dashboards: ## Generate the Grafana dashboards, the alert rules (chart) and their promtool tests from internal/monitoring.
	$(GO) run ./hack/dashboards --chart-dir $(CHART_DIR) --rule-tests $(ALERT_RULE_TESTS)

# Flags of `make demo`, for example DEMO_FLAGS="--duration 5m --sessions 200"; see `go run ./hack/demo -h`.
DEMO_FLAGS ?=

.PHONY: demo
demo: envtest otelcol gateway build-worker loadgen ## Run the whole pipeline on this machine with live figures, then compare what was sent with what was exported (docs/demo.md).
	$(GO) build -o $(LOCALBIN)/demo ./hack/demo
	$(E2E_ENV) $(LOCALBIN)/demo --crd-dir config/crd/bases $(DEMO_FLAGS)

##@ Test

.PHONY: test-tools
test-tools: controller-gen helm golangci-lint envtest otelcol gateway prometheus module-binaries cluster-binaries ## Build every tool and binary `make test` uses; `make -j3 test-tools` builds them side by side (CI does).

# The binaries of this module share most of their dependencies: built one
# after the other, each reuses what the previous one compiled.
.PHONY: module-binaries
module-binaries:
	$(MAKE) -j1 build-manager build-worker loadgen

.PHONY: test
test: $(TEST_TARGETS) ## Run every check CI runs: generated files, Go unit and envtest suites, Helm chart checks, and the checks others append to TEST_TARGETS.

.PHONY: go-test
go-test: envtest ## Run the module's Go tests (unit and envtest suites) except the chart, end-to-end, dashboard and cluster suites.
	PODMONITOR_CRD="$$(hack/tools/module-file.sh $(PODMONITOR_CRD_SOURCE))" \
		$(GO) test $(GO_TEST_FLAGS) $$($(GO) list ./... | grep -v -e '/test/chart' -e '/test/e2e' -e '/test/dashboards' -e '/test/cluster')

.PHONY: chart-test
chart-test: envtest helm build-manager ## Lint and render the Helm chart, dry-run it and dist/install.yaml against envtest, run the manager as the chart deploys it.
	$(MAKE) helm-lint build-installer
	HELM="$(HELM)" KUBECTL="$(PINNED_KUBECTL)" MANAGER_BINARY="$(LOCALBIN)/manager" MANAGER_VERSION="$(VERSION)" INSTALLER_YAML="$(CURDIR)/dist/install.yaml" \
		SERVICEMONITOR_CRD="$$(hack/tools/module-file.sh $(SERVICEMONITOR_CRD_SOURCE))" \
		PROMETHEUSRULE_CRD="$$(hack/tools/module-file.sh $(PROMETHEUSRULE_CRD_SOURCE))" \
		$(GO) test $(GO_TEST_FLAGS) ./test/chart/...

.PHONY: alert-rules
alert-rules: prometheus ## Check the chart's alert rules with promtool and run their unit tests (a firing and a quiet case per alert).
	$(PROMTOOL) check rules $(CHART_DIR)/files/alert-rules.yaml
	$(PROMTOOL) test rules $(ALERT_RULE_TESTS)

.PHONY: validate-gateway-configs
validate-gateway-configs: otelcol gateway ## Validate every golden gateway configuration with the collector that runs it (bin/gateway or bin/otelcol); check the upstream gateway image is bin/otelcol's release.
	hack/otelcol/validate-configs.sh $(OTELCOL) $(GATEWAY)

# The binaries the end-to-end suite and the demo run (test/e2e/harness).
E2E_ENV = OTELCOL_BINARY="$(OTELCOL)" GATEWAY_BINARY="$(GATEWAY)" WORKER_BINARY="$(LOCALBIN)/worker" LOADGEN_BINARY="$(LOCALBIN)/loadgen"

.PHONY: e2e
e2e: envtest otelcol gateway build-worker loadgen ## Run the end-to-end suite: operator on envtest, upstream collector gateways and workers as local processes, load generator, remote write receiver (docs/e2e.md).
	$(GO) test $(GO_TEST_FLAGS) ./test/e2e/harness
	$(E2E_ENV) $(GO) test -count=1 -timeout 15m ./test/e2e -ginkgo.v

# The single-node cluster of the cluster suite (hack/cluster, test/cluster):
# a real kubelet, containerd and control plane inside one network namespace
# of their own. cluster-up and cluster-down need root.
CLUSTER_ENV = ENVTEST_DIR="$(ENVTEST_ASSETS_DIR)" NODE_K8S_DIR="$(CLUSTER_K8S_DIR)" COREDNS="$(COREDNS)" PAUSE_IMAGE="$(PAUSE_IMG)"
# The second operator release `helm upgrade` moves to in the suite.
UPGRADE_VERSION ?= $(VERSION)-upgrade
# The suite's remote write receiver: `prometheus`, a real Prometheus built
# by `make prometheus` (hack/prometheus), or `harness`, the end-to-end
# suite's receiver as a program (hack/cluster/receiver).
CLUSTER_RECEIVER ?= prometheus
PROMETHEUS ?= $(LOCALBIN)/prometheus
PROMETHEUS_IMG ?= $(IMG_REGISTRY)/deltapipeline-cluster-prometheus:cluster
RECEIVER_IMG ?= $(IMG_REGISTRY)/deltapipeline-cluster-receiver:$(VERSION)
LOADGEN_IMG ?= $(IMG_REGISTRY)/deltapipeline-loadgen:$(VERSION)
ifeq ($(CLUSTER_RECEIVER),prometheus)
RECEIVER_ARCHIVE = $(IMAGES_DIR)/prometheus.tar
RECEIVER_ENV = PROMETHEUS_IMG="$(PROMETHEUS_IMG)"
else
RECEIVER_ARCHIVE = $(IMAGES_DIR)/$(VERSION)/receiver.tar
RECEIVER_ENV = RECEIVER_IMG="$(RECEIVER_IMG)"
endif
CLUSTER_IMAGE_ARCHIVES = $(IMAGES_DIR)/$(VERSION)/manager.tar $(IMAGES_DIR)/$(VERSION)/worker.tar \
	$(IMAGES_DIR)/$(UPGRADE_VERSION)/manager.tar $(IMAGES_DIR)/$(UPGRADE_VERSION)/worker.tar \
	$(IMAGES_DIR)/$(VERSION)/gateway.tar $(IMAGES_DIR)/pause.tar $(IMAGES_DIR)/$(VERSION)/loadgen.tar $(RECEIVER_ARCHIVE)

.PHONY: cluster-images
cluster-images: loadgen ## Build the images the cluster suite imports: `make images` for VERSION and UPGRADE_VERSION, the receiver (CLUSTER_RECEIVER) and the load generator.
	$(MAKE) images
	$(MAKE) images VERSION=$(UPGRADE_VERSION)
	$(IMAGEBUILD) --image loadgen --version $(VERSION) --ref $(LOADGEN_IMG) --binary $(LOCALBIN)/loadgen --out $(IMAGES_DIR)/$(VERSION)/loadgen.tar
ifeq ($(CLUSTER_RECEIVER),prometheus)
	test -x $(PROMETHEUS) || $(MAKE) prometheus
	$(IMAGEBUILD) --image prometheus --version cluster --ref $(PROMETHEUS_IMG) --binary $(PROMETHEUS) --out $(IMAGES_DIR)/prometheus.tar
else
	$(GO_BUILD) -buildvcs=false -o $(IMAGES_DIR)/$(VERSION)/receiver ./hack/cluster/receiver
	$(IMAGEBUILD) --image receiver --version $(VERSION) --ref $(RECEIVER_IMG) --binary $(IMAGES_DIR)/$(VERSION)/receiver --out $(IMAGES_DIR)/$(VERSION)/receiver.tar
endif

.PHONY: cluster-up
cluster-up: envtest cluster-binaries cluster-images ## Start the single-node cluster (root; network namespace deltapipeline-cluster, KUBECONFIG /tmp/deltapipeline-cluster/admin.kubeconfig).
	$(CLUSTER_ENV) hack/cluster/cluster-up.sh $(CLUSTER_IMAGE_ARCHIVES)

.PHONY: cluster-down
cluster-down: ## Stop the cluster and remove every process, mount, network namespace and cgroup it made; fails listing what is left.
	$(CLUSTER_ENV) hack/cluster/cluster-down.sh

# The suite runs inside the cluster's network namespace, where the module
# proxy is out of reach: everything is built before, the suite with go test -c.
CLUSTER_SUITE_ENV = HELM="$(HELM)" KUBECTL="$(PINNED_KUBECTL)" CHART_DIR="$(CURDIR)/$(CHART_DIR)" LOADGEN_BINARY="$(LOCALBIN)/loadgen" \
	MANAGER_IMG="$(MANAGER_IMG)" WORKER_IMG="$(WORKER_IMG)" \
	UPGRADE_MANAGER_IMG="$(IMG_REGISTRY)/deltapipeline-operator:$(UPGRADE_VERSION)" UPGRADE_WORKER_IMG="$(IMG_REGISTRY)/deltapipeline-worker:$(UPGRADE_VERSION)" \
	GATEWAY_IMG="$(GATEWAY_IMG)" $(RECEIVER_ENV) LOADGEN_IMG="$(LOADGEN_IMG)" CLUSTER_VOLUMES_DIR="/tmp/deltapipeline-cluster/volumes" NODE_NAME=node0

# Extra flags of the cluster suite's test binary, e.g. to run some specs of
# its ordered container (the recipe's shell reads the inner quotes):
# make test-cluster CLUSTER_TEST_FLAGS="-ginkgo.focus='Claude Code sample|kubectl scale'"
CLUSTER_TEST_FLAGS ?=

.PHONY: test-cluster
test-cluster: envtest helm otelcol cluster-binaries loadgen cluster-images ## Run the cluster suite: the operator installed with Helm on a real single-node cluster, real pods, Prometheus as the receiver (test/cluster; needs root).
	$(GO) test -c -o $(LOCALBIN)/cluster.test ./test/cluster
	cd test/cluster && $(CLUSTER_ENV) CLUSTER_IMAGES="$(CLUSTER_IMAGE_ARCHIVES)" $(CLUSTER_SUITE_ENV) \
		../../hack/cluster/run.sh $(LOCALBIN)/cluster.test -test.timeout 30m -ginkgo.v $(CLUSTER_TEST_FLAGS)

# Seconds each fuzz target runs in `make fuzz`; the committed seeds under
# testdata/fuzz also run as plain tests in go-test.
FUZZTIME ?= 8s
FUZZ_DIRS ?= cmd internal

# Where `make dashboards-test DASHBOARD_RECORD=...` writes the panels'
# results for the preview pictures (`make dashboard-previews`).
DASHBOARD_RECORD ?=

.PHONY: dashboards-test
dashboards-test: envtest otelcol gateway build-worker loadgen prometheus ## Run every dashboard panel's query against bin/prometheus fed by an end-to-end run; usage totals must equal what the load generator sent.
	$(E2E_ENV) PROMETHEUS_BINARY="$(PROMETHEUS)" $(GO) test -count=1 -timeout 10m ./test/dashboards $(if $(DASHBOARD_RECORD),-args -record $(abspath $(DASHBOARD_RECORD)))

# The preview pictures of docs/operations.md, drawn from the query results of
# a dashboards-test run.
PREVIEW_RECORD := $(LOCALBIN)/dashboard-results.json

.PHONY: dashboard-previews
dashboard-previews: ## Run dashboards-test, recording every panel's results, and draw docs/images/<dashboard>.png from them.
	$(MAKE) dashboards-test DASHBOARD_RECORD=$(PREVIEW_RECORD)
	$(GO) run ./hack/dashboards --previews $(PREVIEW_RECORD) --preview-dir docs/images

.PHONY: fuzz
fuzz: ## Run every fuzz target (func Fuzz... under cmd/ and internal/) for FUZZTIME each, one after the other.
	GO="$(GO)" FUZZTIME="$(FUZZTIME)" hack/fuzz.sh $(FUZZ_DIRS)

# Flags of the process-level comparison, for example
# BENCH_FLAGS="--duration 30s --upstream-memory-streams 200000"; see `go run ./hack/bench -h`.
BENCH_FLAGS ?=

.PHONY: bench
bench: build-worker otelcol ## Run the engine, state, worker and hand-over benchmarks, then compare bin/worker (durable and in memory) with upstream bin/otelcol and a discard sink (hack/bench).
	$(GO) test -run '^$$' -bench . -benchmem ./internal/convert ./internal/state ./internal/worker ./internal/handoff
	$(GO) build -o $(LOCALBIN)/bench ./hack/bench
	$(LOCALBIN)/bench --worker $(LOCALBIN)/worker --otelcol $(LOCALBIN)/otelcol $(BENCH_FLAGS)

# The gateway binary of our topology in `make bench-pipeline`; it runs the
# gateway configuration the operator renders.
GATEWAY_BINARY ?= $(GATEWAY)

.PHONY: bench-pipeline
bench-pipeline: build-worker otelcol gateway ## Compare whole pipelines: clients -> 2 gateways -> 3 workers -> discard sink, ours (operator defaults) against the seed topology (upstream collectors) and the sink fed directly (hack/bench --pipeline).
	$(GO) build -o $(LOCALBIN)/bench ./hack/bench
	$(LOCALBIN)/bench --pipeline --worker $(LOCALBIN)/worker --otelcol $(LOCALBIN)/otelcol --gateway-binary $(GATEWAY_BINARY) $(BENCH_FLAGS)

.PHONY: helm-lint
helm-lint: helm ## Lint the Helm chart with default and non-default values.
	$(HELM) lint --strict $(CHART_DIR)
	$(HELM) lint --strict $(CHART_DIR) -f test/chart/testdata/values-custom.yaml
	$(HELM) lint --strict $(CHART_DIR) -f test/chart/testdata/values-watch-namespaces.yaml

##@ Build

# The binaries are built as the Dockerfiles build them (static, trimmed
# paths, stripped, version stamped), so the tests run what the images hold;
# test/chart checks the manager's build settings against the Dockerfile.
GO_BUILD = CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w $(VERSION_LDFLAGS)"

.PHONY: build
build: build-manager build-worker ## Build bin/manager and bin/worker with the version stamped in.

.PHONY: build-manager
build-manager: ## Build bin/manager.
	$(GO_BUILD) -o $(LOCALBIN)/manager ./cmd/manager

.PHONY: build-worker
build-worker: ## Build bin/worker.
	$(GO_BUILD) -o $(LOCALBIN)/worker ./cmd/worker

.PHONY: loadgen
loadgen: ## Build bin/loadgen, the Claude Code load generator.
	$(GO_BUILD) -o $(LOCALBIN)/loadgen ./cmd/loadgen

# DeltaPipeline's gateway distribution (cmd/gateway, its own module that
# imports internal/ring and internal/version from this one); rebuilt when
# either changes.
GATEWAY ?= $(LOCALBIN)/gateway
GATEWAY_SOURCES = cmd/gateway/go.mod cmd/gateway/go.sum $(shell find cmd/gateway -name '*.go' -not -name '*_test.go') \
	$(wildcard internal/ring/*.go internal/version/*.go) go.mod

.PHONY: gateway
gateway: $(GATEWAY) ## Build bin/gateway: DeltaPipeline's gateway collector (cmd/gateway) with the version stamped in.
$(GATEWAY): $(GATEWAY_SOURCES)
	cd cmd/gateway && GOWORK=off CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -ldflags "-s -w $(VERSION_LDFLAGS)" -o $@ .

.PHONY: test-gateway
test-gateway: envtest ## Run the gateway distribution's tests (cmd/gateway is its own module).
	cd cmd/gateway && GOWORK=off $(GO) test $(GO_TEST_FLAGS) ./...

# The upstream collector used by validate-gateway-configs, the end-to-end
# suite and the demo for the loadBalancing router, and by the benchmarks as
# the seed design; rebuilt only when its module changes.
OTELCOL ?= $(LOCALBIN)/otelcol

.PHONY: otelcol
otelcol: $(OTELCOL) ## Build bin/otelcol: the upstream OpenTelemetry Collector (contrib 0.161.0 components) from hack/otelcol.
$(OTELCOL): hack/otelcol/go.mod hack/otelcol/go.sum $(wildcard hack/otelcol/*.go)
	cd hack/otelcol && GOWORK=off CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -o $@ .

# The upstream Prometheus server and promtool, used by the alert rule checks
# and the dashboard query test; rebuilt only when their module changes.
# remove_all_sd keeps only the file and HTTP service discovery (upstream's
# plugins mechanism), and without builtinassets the web UI is not embedded:
# the tests use the API, the TSDB, scraping and the remote write receiver.
PROMETHEUS ?= $(LOCALBIN)/prometheus
PROMTOOL ?= $(LOCALBIN)/promtool
PROMETHEUS_BUILD_TAGS := remove_all_sd netgo
PROMETHEUS_MODULE_VERSION = $(shell awk '$$1 == "github.com/prometheus/prometheus" { print $$2; exit }' hack/prometheus/go.mod)
PROMETHEUS_BUILD = cd hack/prometheus && GOWORK=off CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -tags "$(PROMETHEUS_BUILD_TAGS)" \
	-ldflags "-s -w -X github.com/prometheus/common/version.Version=$(PROMETHEUS_MODULE_VERSION)" -o $@ github.com/prometheus/prometheus/cmd/$(notdir $@)

.PHONY: prometheus
prometheus: $(PROMETHEUS) $(PROMTOOL) ## Build bin/prometheus and bin/promtool: the upstream Prometheus server and promtool from hack/prometheus.
$(PROMETHEUS) $(PROMTOOL): hack/prometheus/go.mod hack/prometheus/go.sum
	$(PROMETHEUS_BUILD)
# One after the other even under make -j: the second reuses what the first
# compiled instead of compiling the same packages at the same time.
$(PROMTOOL): | $(PROMETHEUS)

.PHONY: docker-build
docker-build: ## Build the manager, worker and gateway images (MANAGER_IMG, WORKER_IMG, GATEWAY_IMG).
	$(CONTAINER_TOOL) build --build-arg VERSION=$(VERSION) -t $(MANAGER_IMG) -f Dockerfile .
	$(CONTAINER_TOOL) build --build-arg VERSION=$(VERSION) -t $(WORKER_IMG) -f Dockerfile.worker .
	$(CONTAINER_TOOL) build --build-arg VERSION=$(VERSION) -t $(GATEWAY_IMG) -f Dockerfile.gateway .

# `make images` writes the same images as docker-build without Docker or a
# registry (hack/imagebuild): OCI image layouts packed as tar files that
# `ctr -n k8s.io images import` loads, under bin/images/<VERSION>/. The
# binaries are built into that directory with the Dockerfiles' flags and
# VERSION stamped in.
IMAGES_DIR ?= $(LOCALBIN)/images
IMAGEBUILD ?= $(LOCALBIN)/imagebuild
# The pod sandbox of the cluster suite's node (hack/cluster/pause).
PAUSE_IMG_TAG ?= 1
PAUSE_IMG ?= $(IMG_REGISTRY)/deltapipeline-cluster-pause:$(PAUSE_IMG_TAG)

.PHONY: images
images: ## Build the manager, worker, gateway and pod-sandbox OCI images without Docker into bin/images/VERSION/*.tar (MANAGER_IMG, WORKER_IMG, GATEWAY_IMG; docs/install.md).
	mkdir -p $(IMAGES_DIR)/$(VERSION)
	$(GO) build -o $(IMAGEBUILD) ./hack/imagebuild
	$(GO_BUILD) -buildvcs=false -o $(IMAGES_DIR)/$(VERSION)/manager ./cmd/manager
	$(GO_BUILD) -buildvcs=false -o $(IMAGES_DIR)/$(VERSION)/worker ./cmd/worker
	$(IMAGEBUILD) --image manager --version $(VERSION) --ref $(MANAGER_IMG) --binary $(IMAGES_DIR)/$(VERSION)/manager --out $(IMAGES_DIR)/$(VERSION)/manager.tar
	$(IMAGEBUILD) --image worker --version $(VERSION) --ref $(WORKER_IMG) --binary $(IMAGES_DIR)/$(VERSION)/worker --out $(IMAGES_DIR)/$(VERSION)/worker.tar
	cd cmd/gateway && GOWORK=off CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -ldflags "-s -w $(VERSION_LDFLAGS)" -o $(IMAGES_DIR)/$(VERSION)/gateway .
	$(IMAGEBUILD) --image gateway --version $(VERSION) --ref $(GATEWAY_IMG) --binary $(IMAGES_DIR)/$(VERSION)/gateway --out $(IMAGES_DIR)/$(VERSION)/gateway.tar
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -ldflags "-s -w" -o $(IMAGES_DIR)/pause ./hack/cluster/pause
	$(IMAGEBUILD) --image pause --version $(PAUSE_IMG_TAG) --ref $(PAUSE_IMG) --binary $(IMAGES_DIR)/pause --out $(IMAGES_DIR)/pause.tar

.PHONY: docker-push
docker-push: ## Push the manager, worker and gateway images.
	$(CONTAINER_TOOL) push $(MANAGER_IMG)
	$(CONTAINER_TOOL) push $(WORKER_IMG)
	$(CONTAINER_TOOL) push $(GATEWAY_IMG)

# The overlay lives in bin/ so that setting the image never edits config/.
INSTALLER_OVERLAY := $(LOCALBIN)/installer-overlay

.PHONY: installer-overlay
installer-overlay:
	hack/tools/installer-overlay.sh $(INSTALLER_OVERLAY) $(MANAGER_IMG)

.PHONY: build-installer
build-installer: manifests envtest installer-overlay ## Render dist/install.yaml: CRDs, RBAC and the manager Deployment running MANAGER_IMG.
	mkdir -p dist
	$(PINNED_KUBECTL) kustomize $(INSTALLER_OVERLAY) > dist/install.yaml

##@ Deployment

ignore-not-found ?= false

.PHONY: install
install: manifests ## Install the CRDs into the cluster of the current kubectl context.
	$(KUBECTL) apply --server-side -k config/crd

.PHONY: uninstall
uninstall: ## Remove the CRDs (and every DeltaPipeline) from the cluster. ignore-not-found=true to tolerate missing ones.
	$(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -k config/crd

.PHONY: deploy
deploy: manifests installer-overlay ## Deploy CRDs, RBAC and the manager (MANAGER_IMG) to the cluster of the current kubectl context.
	$(KUBECTL) apply --server-side -k $(INSTALLER_OVERLAY)

.PHONY: undeploy
undeploy: installer-overlay ## Remove what `make deploy` created. ignore-not-found=true to tolerate missing objects.
	$(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -k $(INSTALLER_OVERLAY)

##@ Tools

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Install controller-gen into ./bin.
$(CONTROLLER_GEN): $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
	ln -sf controller-gen-$(CONTROLLER_TOOLS_VERSION) $@
$(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION):
	$(call go-install-tool,$@,sigs.k8s.io/controller-tools/cmd/controller-gen,$(CONTROLLER_TOOLS_VERSION))

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Install golangci-lint into ./bin.
$(GOLANGCI_LINT): $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
	ln -sf golangci-lint-$(GOLANGCI_LINT_VERSION) $@
$(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION):
	$(call go-install-tool,$@,github.com/golangci/golangci-lint/v2/cmd/golangci-lint,$(GOLANGCI_LINT_VERSION))

.PHONY: helm
helm: $(HELM) ## Install helm into ./bin.
$(HELM): $(LOCALBIN)/helm-$(HELM_VERSION)
	ln -sf helm-$(HELM_VERSION) $@
$(LOCALBIN)/helm-$(HELM_VERSION):
	$(call go-install-tool,$@,helm.sh/helm/v3/cmd/helm,$(HELM_VERSION))

# The envtest control plane and kubectl, each built from its own module under
# hack/envtest. A binary is rebuilt only when its module changes.
ENVTEST_BUILD = mkdir -p $(dir $@) && cd hack/envtest/$(1) && GOWORK=off CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -ldflags "-s -w $(2)" -o $@ .
K8S_VERSION_LDFLAGS := -X k8s.io/component-base/version.gitVersion=v$(ENVTEST_K8S_VERSION) \
	-X k8s.io/component-base/version.gitMajor=$(word 1,$(subst ., ,$(ENVTEST_K8S_VERSION))) \
	-X k8s.io/component-base/version.gitMinor=$(word 2,$(subst ., ,$(ENVTEST_K8S_VERSION))) \
	-X k8s.io/component-base/version.gitTreeState=clean

.PHONY: envtest
envtest: $(ENVTEST_ASSETS_DIR)/kube-apiserver $(ENVTEST_ASSETS_DIR)/etcd $(ENVTEST_ASSETS_DIR)/kubectl ## Build kube-apiserver, etcd and kubectl for envtest into bin/k8s/<version>-linux-amd64.

$(ENVTEST_ASSETS_DIR)/kube-apiserver: hack/envtest/kube-apiserver/go.mod hack/envtest/kube-apiserver/main.go
	hack/envtest/check-module-version.sh hack/envtest/kube-apiserver/go.mod k8s.io/kubernetes v$(ENVTEST_K8S_VERSION)
	$(call ENVTEST_BUILD,kube-apiserver,$(K8S_VERSION_LDFLAGS))

$(ENVTEST_ASSETS_DIR)/etcd: hack/envtest/etcd/go.mod hack/envtest/etcd/main.go
	hack/envtest/check-module-version.sh hack/envtest/etcd/go.mod go.etcd.io/etcd/server/v3 v$(ENVTEST_ETCD_VERSION)
	$(call ENVTEST_BUILD,etcd,)

$(ENVTEST_ASSETS_DIR)/kubectl: hack/envtest/kubectl/go.mod hack/envtest/kubectl/main.go
	hack/envtest/check-module-version.sh hack/envtest/kubectl/go.mod k8s.io/kubectl v0.$(patsubst 1.%,%,$(ENVTEST_K8S_VERSION))
	$(call ENVTEST_BUILD,kubectl,$(K8S_VERSION_LDFLAGS))

# The node and controllers of the single-node cluster (test/cluster), of the
# envtest release, built from one module under hack/cluster/kube with
# `go build` of all four commands at once, so they share one package graph.
# They live beside (not in) the envtest directory, which `make envtest` owns.
CLUSTER_K8S_DIR ?= $(LOCALBIN)/k8s/node-$(ENVTEST_K8S_VERSION)-linux-amd64
CLUSTER_K8S_COMMANDS := kubelet kube-proxy kube-scheduler kube-controller-manager
CLUSTER_K8S_BINARIES := $(addprefix $(CLUSTER_K8S_DIR)/,$(CLUSTER_K8S_COMMANDS))
COREDNS ?= $(LOCALBIN)/coredns
COREDNS_VERSION ?= v1.15.0

.PHONY: cluster-binaries
cluster-binaries: $(CLUSTER_K8S_BINARIES) $(COREDNS) ## Build kubelet, kube-proxy, kube-scheduler, kube-controller-manager (bin/k8s/node-<version>-linux-amd64) and CoreDNS (bin/coredns) for the cluster suite.

# After kube-apiserver (order only): both compile most of k8s.io/kubernetes,
# and built one after the other the second reuses the first's build cache
# instead of compiling the same packages beside it on the same cores.
$(CLUSTER_K8S_BINARIES) &: hack/cluster/kube/go.mod hack/cluster/kube/go.sum $(wildcard hack/cluster/kube/*/main.go) | $(ENVTEST_ASSETS_DIR)/kube-apiserver
	hack/envtest/check-module-version.sh hack/cluster/kube/go.mod k8s.io/kubernetes v$(ENVTEST_K8S_VERSION)
	mkdir -p $(CLUSTER_K8S_DIR)
	cd hack/cluster/kube && GOWORK=off CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -ldflags "-s -w $(K8S_VERSION_LDFLAGS)" -o $(CLUSTER_K8S_DIR)/ $(addprefix ./,$(CLUSTER_K8S_COMMANDS))

$(COREDNS): hack/cluster/coredns/go.mod hack/cluster/coredns/go.sum hack/cluster/coredns/main.go
	hack/envtest/check-module-version.sh hack/cluster/coredns/go.mod github.com/coredns/coredns $(COREDNS_VERSION)
	cd hack/cluster/coredns && GOWORK=off CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -ldflags "-s -w" -o $@ .

# go-install-tool installs $(2)@$(3) and names the binary $(1), so that a
# version bump installs the new version instead of reusing the old binary.
define go-install-tool
@set -e; \
tmpbin=$$(mktemp -d); \
echo "installing $(2)@$(3)"; \
GOWORK=off GOBIN=$$tmpbin $(GO) install $(2)@$(3); \
mkdir -p $(LOCALBIN); \
mv $$tmpbin/$$(basename $(2)) $(1); \
rm -rf $$tmpbin
endef
