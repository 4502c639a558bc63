package remotewrite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/deltapipeline/deltapipeline/internal/workerconfig"
)

// apsService is the SigV4 service name of Amazon Managed Service for Prometheus.
const apsService = "aps"

// sigV4Transport signs each request, including the exact compressed body
// it carries, with AWS Signature Version 4.
type sigV4Transport struct {
	base        http.RoundTripper
	signer      *v4.Signer
	credentials aws.CredentialsProvider
	region      string
	now         func() time.Time
}

// defaultCredentials follows the SDK's default chain (environment, IRSA web
// identity, EKS Pod Identity, shared files, instance role) and assumes
// roleARN on top of it when set.
func defaultCredentials(ctx context.Context, cfg workerconfig.SigV4) (aws.CredentialsProvider, error) {
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(cfg.Region))
	if err != nil {
		return nil, fmt.Errorf("loading AWS credentials for SigV4: %w", err)
	}
	if cfg.RoleARN == "" {
		return awsCfg.Credentials, nil
	}
	return aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(awsCfg), cfg.RoleARN)), nil
}

func (t *sigV4Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		body, err = io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("reading request body to sign: %w", err)
		}
	}
	req = req.Clone(req.Context())
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	req.ContentLength = int64(len(body))

	sum := sha256.Sum256(body)
	payloadHash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", payloadHash)

	creds, err := t.credentials.Retrieve(req.Context())
	if err != nil {
		return nil, fmt.Errorf("retrieving AWS credentials for SigV4: %w", err)
	}
	if err := t.signer.SignHTTP(req.Context(), creds, req, payloadHash, apsService, t.region, t.now()); err != nil {
		return nil, fmt.Errorf("signing remote write request with SigV4: %w", err)
	}
	return t.base.RoundTrip(req)
}
