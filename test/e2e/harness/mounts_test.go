package harness

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/deltapipeline/deltapipeline/internal/manifests"
	"github.com/deltapipeline/deltapipeline/internal/pipelinetest"
)

// The mounts come from the pod templates the operator builds, so a Secret
// volume added there is mounted locally without a change here.
func TestLocalMountsFollowTheRenderedPodTemplate(t *testing.T) {
	p := pipelinetest.Stored("claude", "telemetry", pipelinetest.WithGatewayTLS("gateway-tls"))
	g, err := manifests.BuildGateway(p, manifests.DefaultOptions(), manifests.Credentials{WorkerToken: "w"})
	if err != nil {
		t.Fatal(err)
	}
	mounts, err := secretMounts(g.Deployment.Spec.Template.Spec)
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]secretMount{}
	for _, m := range mounts {
		byPath[m.MountPath] = m
	}
	if m := byPath[manifests.GatewayTLSDir]; m.Secret != "gateway-tls" || m.Items["tls.crt"] != "tls.crt" || m.Items["tls.key"] != "tls.key" {
		t.Errorf("TLS mount = %+v", m)
	}
	if m := byPath[manifests.WorkerTokenMountPath]; m.Secret != "claude-worker-token" || m.Items[manifests.WorkerTokenFile] != manifests.WorkerTokenFile {
		t.Errorf("worker token mount = %+v", m)
	}

	root := t.TempDir()
	l := LocalMounts{Root: root, mounts: mounts}
	config := "cert_file: " + manifests.GatewayTLSDir + "/tls.crt\nauthorization: Bearer ${file:" + manifests.WorkerTokenPath + "}\nother: /etc/deltapipeline/elsewhere/x\n"
	got := l.Rewrite(config)
	for _, want := range []string{
		"cert_file: " + filepath.Join(root, manifests.GatewayTLSDir, "tls.crt"),
		"${file:" + filepath.Join(root, manifests.WorkerTokenPath) + "}",
		"other: /etc/deltapipeline/elsewhere/x",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("rewritten configuration lacks %q:\n%s", want, got)
		}
	}
	if strings.Count(got, root) != 2 {
		t.Errorf("a path was rewritten twice or not at all:\n%s", got)
	}
}
