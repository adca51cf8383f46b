package granularartifactsextension // import "github.com/granular-dev/granular/collector-plugin/granularartifactsextension"

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/confighttp"
)

// Config is the configuration of the granular_artifacts extension.
type Config struct {
	// ServerConfig is the HTTP server serving GET /artifacts/{id}; its
	// endpoint defaults to 127.0.0.1:16700.
	ServerConfig confighttp.ServerConfig `mapstructure:",squash"`
	// Directory holds the artifact files. It is created with mode 0700.
	Directory string `mapstructure:"directory"`
	// MaxTotalBytes caps the store; the oldest artifacts are deleted to fit.
	MaxTotalBytes int64 `mapstructure:"max_total_bytes"`
	// MaxArtifactBytes rejects single artifacts larger than this.
	MaxArtifactBytes int64 `mapstructure:"max_artifact_bytes"`
	// Retention deletes artifacts older than this; 0 keeps them until the size cap.
	Retention time.Duration `mapstructure:"retention"`
	// PublicURL is the base of the URLs handed out for stored artifacts
	// (<public_url>/artifacts/<id>) when the listen address is not what
	// readers reach, e.g. 0.0.0.0 in a container behind a published port
	// or a Kubernetes Service. Empty: http://<listen address>.
	PublicURL string `mapstructure:"public_url"`

	// prevent unkeyed literal initialization
	_ struct{}
}

var _ component.Config = (*Config)(nil)

// Validate checks the configuration.
func (cfg *Config) Validate() error {
	var errs []error
	if cfg.ServerConfig.NetAddr.Endpoint == "" {
		errs = append(errs, errors.New("endpoint must be set"))
	}
	if cfg.Directory == "" {
		errs = append(errs, errors.New("directory must be set"))
	}
	if cfg.MaxTotalBytes <= 0 {
		errs = append(errs, fmt.Errorf("max_total_bytes must be positive, got %d", cfg.MaxTotalBytes))
	}
	if cfg.MaxArtifactBytes <= 0 {
		errs = append(errs, fmt.Errorf("max_artifact_bytes must be positive, got %d", cfg.MaxArtifactBytes))
	} else if cfg.MaxTotalBytes > 0 && cfg.MaxArtifactBytes > cfg.MaxTotalBytes {
		errs = append(errs, fmt.Errorf("max_artifact_bytes (%d) must not exceed max_total_bytes (%d)", cfg.MaxArtifactBytes, cfg.MaxTotalBytes))
	}
	if cfg.Retention < 0 {
		errs = append(errs, fmt.Errorf("retention must not be negative, got %s", cfg.Retention))
	}
	if cfg.PublicURL != "" {
		u, err := url.Parse(cfg.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			errs = append(errs, fmt.Errorf("public_url must be an absolute http(s) URL without query or fragment, e.g. https://artifacts.example.com, got %q", cfg.PublicURL))
		}
	}
	return errors.Join(errs...)
}
