// Package chart checks the packaging of the operator: the Helm chart in
// charts/deltapipeline-operator and dist/install.yaml. The tests render
// them with helm and kubectl, have a real API server (envtest) accept them
// with server-side dry runs, and run the manager binary exactly as the
// chart's Deployment would.
//
// `make chart-test` builds what the tests need and passes it in through
// HELM, KUBECTL, MANAGER_BINARY, MANAGER_VERSION, INSTALLER_YAML, SERVICEMONITOR_CRD and
// KUBEBUILDER_ASSETS.
package chart
