package granularartifactsextension

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when goroutines outlive them: every
// component started in a test must stop all it started on Shutdown.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
