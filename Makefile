# DeltaPipeline: operator, worker and their tooling.
# `make help` lists the targets.

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
IMG_REGISTRY ?= ghcr.io/deltapipeline
MANAGER_IMG ?= $(IMG_REGISTRY)/deltapipeline-operator:$(VERSION)
WORKER_IMG ?= $(IMG_REGISTRY)/deltapipeline-worker:$(VERSION)
CONTAINER_TOOL ?= docker

GO ?= go
LOCALBIN ?= $(CURDIR)/bin
export PATH := $(LOCALBIN):$(PATH)

# Tool versions, installed into ./bin with `go install`.
CONTROLLER_TOOLS_VERSION ?= v0.23.0
HELM_VERSION ?= v3.22.0

# Control plane used by envtest, built from the Go module proxy (see hack/envtest).
ENVTEST_K8S_VERSION ?= 1.37.2
ENVTEST_ETCD_VERSION ?= 3.6.16
ENVTEST_ASSETS_DIR ?= $(LOCALBIN)/k8s/$(ENVTEST_K8S_VERSION)-linux-amd64
export KUBEBUILDER_ASSETS ?= $(ENVTEST_ASSETS_DIR)

.DEFAULT_GOAL := help

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-20s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

##@ Test

##@ Build

##@ Deployment

##@ Tools
