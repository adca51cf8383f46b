package granularartifactsextension

// Factory and lifecycle tests, the ones mdatagen generates for contrib
// components (generated_component_test.go) and more, written by hand since
// mdatagen is not used here (see metadata.yaml).

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension/extensiontest"

	"github.com/granular-dev/granular/collector-plugin/internal/plugintest"
)

// TestFactory holds the factory to metadata.yaml (type, stability) and its
// default configuration to the rules every component configuration follows.
func TestFactory(t *testing.T) {
	f := NewFactory()
	plugintest.CheckFactory(t, f, "extension", map[string]component.StabilityLevel{"extension": f.Stability()})
	assert.Equal(t, "127.0.0.1:16700", f.CreateDefaultConfig().(*Config).ServerConfig.NetAddr.Endpoint, "listens on loopback by default")
}

// TestComponentLifecycle creates the extension from metadata.yaml's
// tests.config (a free loopback port), starts it, stores and serves an
// artifact, and shuts it down: the listener is closed afterwards.
func TestComponentLifecycle(t *testing.T) {
	f := NewFactory()
	cfg := plugintest.LoadMetadata(t).TestsConfig(t, f).(*Config)
	cfg.Directory = filepath.Join(t.TempDir(), "artifacts") // tests.config cannot name a per-test directory
	ctx := context.Background()

	ext, err := f.Create(ctx, extensiontest.NewNopSettings(Type), cfg)
	require.NoError(t, err)
	require.NoError(t, ext.Start(ctx, componenttest.NewNopHost()))
	url, err := ext.(Store).PutArtifact(ctx, Artifact{ID: "t-s", Data: []byte("perfetto")})
	require.NoError(t, err)
	resp, body := plugintest.Get(t, url)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "perfetto", string(body))
	require.NoError(t, ext.Shutdown(ctx))
	require.NoError(t, ext.Shutdown(ctx), "a second Shutdown is a no-op (it closed the stop channel twice)")

	resp, err = http.Get(url)
	if err == nil {
		resp.Body.Close()
	}
	require.Error(t, err, "the listener is closed after Shutdown")
}
