package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// deployDir holds the configurations users run; the tests load exactly those files.
var deployDir = filepath.Join("..", "..", "..", "deploy", "collector")

// deployEnv is the environment each deploy file needs to validate.
var deployEnv = map[string]map[string]string{
	"single.yaml":             {"JAEGER_OTLP_GRPC": "127.0.0.1:4317"},
	"tier1-loadbalancer.yaml": {"GRANULAR_TIER2_ENDPOINTS": "[127.0.0.1:24317, 127.0.0.1:34317]"},
	"tier2.yaml":              {"JAEGER_OTLP_GRPC": "127.0.0.1:4317"},
}

func deployFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(deployDir, "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no deploy configs found in %s", deployDir)
	sort.Strings(files)
	return files
}

func TestComponents(t *testing.T) {
	f, err := components()
	require.NoError(t, err)
	has := func(kind string, m map[component.Type]bool, names ...string) {
		for _, n := range names {
			assert.True(t, m[component.MustNewType(n)], "%s %s missing", kind, n)
		}
	}
	rec, proc, exp, ext := map[component.Type]bool{}, map[component.Type]bool{}, map[component.Type]bool{}, map[component.Type]bool{}
	for k := range f.Receivers {
		rec[k] = true
	}
	for k := range f.Processors {
		proc[k] = true
	}
	for k := range f.Exporters {
		exp[k] = true
	}
	for k := range f.Extensions {
		ext[k] = true
	}
	has("receiver", rec, "otlp")
	has("processor", proc, "batch", "memory_limiter", "tail_sampling", "granular")
	// otlp, otlphttp and loadbalancing are the deprecated aliases of the
	// current names; both spellings resolve.
	has("exporter", exp, "otlp_grpc", "otlp", "otlp_http", "otlphttp", "debug", "load_balancing", "loadbalancing")
	has("extension", ext, "granular_artifacts")
}

// TestDeployConfigsValidate runs the distribution's own `validate` command
// on every file of deploy/collector, as `granularcol validate --config` does.
func TestDeployConfigsValidate(t *testing.T) {
	for _, file := range deployFiles(t) {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			env, ok := deployEnv[name]
			require.True(t, ok, "add %s to deployEnv so it is validated", name)
			validateCollector(t, file, env)
		})
	}
}

func TestDeployConfigsNeedTheirEnvironment(t *testing.T) {
	t.Setenv("JAEGER_OTLP_GRPC", "")
	col, err := otelcol.NewCollector(withConfig(filepath.Join(deployDir, "single.yaml")))
	require.NoError(t, err)
	err = col.DryRun(context.Background())
	require.ErrorContains(t, err, `exporters::otlp_grpc/jaeger: requires a non-empty "endpoint"`)
}

// TestDeployConfigsBindLoopback checks every listener in the deploy files is
// on 127.0.0.1 unless GRANULAR_LISTEN_HOST says otherwise (containers), and
// exporter endpoints come from the environment.
func TestDeployConfigsBindLoopback(t *testing.T) {
	endpoint := regexp.MustCompile(`^\s*(?:endpoint|host):\s*(\S+)`)
	for _, file := range deployFiles(t) {
		f, err := os.Open(file)
		require.NoError(t, err)
		sc := bufio.NewScanner(f)
		for line := 1; sc.Scan(); line++ {
			m := endpoint.FindStringSubmatch(sc.Text())
			if m == nil {
				continue
			}
			v := m[1]
			ok := strings.HasPrefix(v, loopbackHost) || strings.HasPrefix(v, "${env:JAEGER_OTLP_GRPC}")
			assert.True(t, ok, "%s:%d: endpoint %q must bind 127.0.0.1", filepath.Base(file), line, v)
		}
		require.NoError(t, f.Close())
	}
}

// loopbackHost is how every listener address starts in the deploy files.
const loopbackHost = "${env:GRANULAR_LISTEN_HOST:-127.0.0.1}"

func withConfig(uris ...string) otelcol.CollectorSettings {
	set := settings()
	set.ConfigProviderSettings.ResolverSettings.URIs = uris
	set.ConfigProviderSettings.ResolverSettings.DefaultScheme = "env"
	// The collector would swap the process-wide gRPC logger while the test's
	// own gRPC server (the fake Jaeger) is logging: a data race in tests only.
	set.SkipSettingGRPCLogger = true
	return set
}

// runCollector runs granularcol in-process on deploy/collector/<file> until
// the test ends; it returns once the collector is running.
func runCollector(t *testing.T, file string) {
	t.Helper()
	col, err := otelcol.NewCollector(withConfig(filepath.Join(deployDir, file)))
	require.NoError(t, err)
	runErr := make(chan error, 1)
	go func() { runErr <- col.Run(context.Background()) }()
	waitFor(t, "collector running", func() bool {
		select {
		case err := <-runErr:
			t.Fatalf("collector exited: %v", err)
		default:
		}
		return col.GetState() == otelcol.StateRunning
	})
	t.Cleanup(func() {
		col.Shutdown()
		require.NoError(t, <-runErr)
	})
}

// waitFor polls cond: the collector runs on real time here. explain, if
// given, is logged when it times out.
func waitFor(t *testing.T, what string, cond func() bool, explain ...func() string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			for _, e := range explain {
				t.Log(e())
			}
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// postTraces sends td to the collector's OTLP/HTTP port as an instrumented
// service does; postLogs likewise.
func postTraces(t *testing.T, port string, td ptrace.Traces) {
	t.Helper()
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	require.NoError(t, err)
	postOTLP(t, "http://127.0.0.1:"+port+"/v1/traces", body)
}

func postLogs(t *testing.T, port string, ld plog.Logs) {
	t.Helper()
	body, err := plogotlp.NewExportRequestFromLogs(ld).MarshalProto()
	require.NoError(t, err)
	postOTLP(t, "http://127.0.0.1:"+port+"/v1/logs", body)
}

func postOTLP(t *testing.T, url string, payload []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/x-protobuf", bytes.NewReader(payload))
	require.NoError(t, err)
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(msg))
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	require.NoError(t, err)
	return port
}

func TestDeployConfigRejectsBadSLO(t *testing.T) {
	t.Setenv("JAEGER_OTLP_GRPC", "127.0.0.1:4317")
	t.Setenv("GRANULAR_SLO", "GET /messages=100ms,auth.*")
	col, err := otelcol.NewCollector(withConfig(filepath.Join(deployDir, "single.yaml")))
	require.NoError(t, err)
	err = col.DryRun(context.Background())
	require.ErrorContains(t, err, `processors::granular: slo: SLO rule "auth.*": no '='; expected PATTERN=DURATION`)
}
