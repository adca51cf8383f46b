package granularartifactsextension // import "github.com/granular-dev/granular/collector-plugin/granularartifactsextension"

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/extension"
)

const (
	typeStr = "granular_artifacts"
	// DefaultEndpoint is the loopback address the store serves on by default.
	DefaultEndpoint = "127.0.0.1:16700"
	// PerfettoUIOrigin is the one origin allowed by default (CORS) to fetch
	// artifacts from the browser: the Perfetto UI, which the Jaeger link
	// https://ui.perfetto.dev/#!/?url=<artifact URL> opens.
	PerfettoUIOrigin = "https://ui.perfetto.dev"
	// DefaultReadTimeout bounds the time to read a whole request.
	DefaultReadTimeout = time.Minute
)

// Type is the component type of the extension.
var Type = component.MustNewType(typeStr)

// NewFactory returns the factory of the granular_artifacts extension.
func NewFactory() extension.Factory {
	return extension.NewFactory(Type, createDefaultConfig, create, component.StabilityLevelAlpha)
}

func createDefaultConfig() component.Config {
	srv := confighttp.NewDefaultServerConfig()
	srv.NetAddr.Endpoint = DefaultEndpoint
	// confighttp sets no read_timeout: a request whose body trickles in would
	// hold its connection for as long as the client likes, as net/http reads
	// (and discards) a body of up to 256 KiB before answering. A minute, as
	// read_header_timeout: no request to the store carries a body.
	srv.ReadTimeout = DefaultReadTimeout
	srv.CORS = configoptional.Some(confighttp.CORSConfig{AllowedOrigins: []string{PerfettoUIOrigin}})
	return &Config{
		ServerConfig:     srv,
		Directory:        filepath.Join(os.TempDir(), "granular-artifacts"),
		MaxTotalBytes:    1 << 30,
		MaxArtifactBytes: 64 << 20,
		Retention:        24 * time.Hour,
	}
}

func create(_ context.Context, set extension.Settings, cfg component.Config) (extension.Extension, error) {
	return newExtension(cfg.(*Config), set.TelemetrySettings), nil
}
