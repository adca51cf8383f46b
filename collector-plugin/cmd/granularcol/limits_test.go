package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// requestCap is what every OTLP receiver of the deploy files takes at most
// in one request, on either protocol and on every tier.
const requestCap = 16 << 20

// TestDeployConfigsCapRequests: each OTLP receiver of deploy/collector sets
// its protocol's cap, to requestCap (the defaults differ: gRPC 4 MiB, HTTP
// 20 MiB; a request tier 1 takes must fit tier 2).
func TestDeployConfigsCapRequests(t *testing.T) {
	for _, file := range deployFiles(t) {
		protocols := m(m(m(yamlDocs(t, file)[0]["receivers"])["otlp"])["protocols"])
		require.NotEmpty(t, protocols, "%s has no OTLP receiver", file)
		for name, p := range protocols {
			switch name {
			case "grpc":
				assert.Equal(t, requestCap>>20, m(p)["max_recv_msg_size_mib"], "%s: grpc", filepath.Base(file))
			case "http":
				assert.Equal(t, requestCap, m(p)["max_request_body_size"], "%s: http", filepath.Base(file))
			default:
				t.Errorf("%s: protocol %s has no cap check", file, name)
			}
		}
	}
}

// artifactRequest is a logs export carrying one granular.artifact record
// of bodyBytes bytes, for a trace no span of which arrives.
func artifactRequest(bodyBytes int) plogotlp.ExportRequest {
	ld := chatArtifacts(map[byte]string{7: "big"})
	ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0).Body().SetEmptyBytes().FromRaw(make([]byte, bodyBytes))
	return plogotlp.NewExportRequestFromLogs(ld)
}

// TestSingleDeploymentCapsRequests runs single.yaml in-process and sends
// logs exports just under and just over requestCap on both protocols: the
// first are taken, the second refused (HTTP 400, gRPC ResourceExhausted).
func TestSingleDeploymentCapsRequests(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole collector")
	}
	_, jaegerAddr := startFakeJaeger(t)
	grpcPort, httpPort := freePort(t), freePort(t)
	t.Setenv("JAEGER_OTLP_GRPC", jaegerAddr)
	t.Setenv("GRANULAR_OTLP_GRPC_PORT", grpcPort)
	t.Setenv("GRANULAR_OTLP_HTTP_PORT", httpPort)
	t.Setenv("GRANULAR_ARTIFACTS_PORT", freePort(t))
	t.Setenv("GRANULAR_METRICS_PORT", freePort(t))
	t.Setenv("GRANULAR_ARTIFACT_DIR", filepath.Join(t.TempDir(), "artifacts"))
	t.Setenv("GRANULAR_LOG_LEVEL", "error")
	runCollector(t, "single.yaml")

	under, over := artifactRequest(requestCap-(64<<10)), artifactRequest(requestCap+1)

	post := func(req plogotlp.ExportRequest) (int, string) {
		body, err := req.MarshalProto()
		require.NoError(t, err)
		resp, err := http.Post("http://127.0.0.1:"+httpPort+"/v1/logs", "application/x-protobuf", bytes.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		msg, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(msg)
	}
	code, msg := post(under)
	assert.Equal(t, http.StatusOK, code, msg)
	code, msg = post(over)
	assert.Equal(t, http.StatusBadRequest, code, msg)
	t.Logf("HTTP, over the cap: %d %s", code, msg)

	conn, err := grpc.NewClient("127.0.0.1:"+grpcPort, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	client := plogotlp.NewGRPCClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = client.Export(ctx, under)
	require.NoError(t, err)
	_, err = client.Export(ctx, over)
	assert.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	t.Logf("gRPC, over the cap: %v", err)
}
