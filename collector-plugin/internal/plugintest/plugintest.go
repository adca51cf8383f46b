// Package plugintest holds what the tests of this module share: loading a
// component's testdata/config.yaml, fetching over HTTP, and holding a
// component's metadata.yaml (the Collector's mdatagen format) to its code.
// The components use no generated code: mdatagen of Collector v0.161.0 does
// not build from the Go module proxy (collector-plugin/README.md says why),
// so these checks are what keeps metadata.yaml and the code in step.
package plugintest // import "github.com/granular-dev/granular/collector-plugin/internal/plugintest"

import (
	"io"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap/confmaptest"
)

// LoadConfig returns the factory's default configuration with the entry id
// of testdata/config.yaml unmarshalled onto it.
func LoadConfig(t testing.TB, f component.Factory, id component.ID) component.Config {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	sub, err := cm.Sub(id.String())
	require.NoError(t, err)
	cfg := f.CreateDefaultConfig()
	require.NoError(t, sub.Unmarshal(cfg))
	return cfg
}

// Get fetches url and returns the response, its body read and closed.
func Get(t testing.TB, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, body
}
