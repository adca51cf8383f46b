package granularprocessor // import "github.com/granular-dev/granular/collector-plugin/granularprocessor"

import "time"

// clock is injected so tests drive decisions without sleeping.
type clock interface {
	Now() time.Time
	NewTicker(d time.Duration) ticker
}

type ticker interface {
	C() <-chan time.Time
	Stop()
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTicker(d time.Duration) ticker { return realTicker{time.NewTicker(d)} }

type realTicker struct{ t *time.Ticker }

func (r realTicker) C() <-chan time.Time { return r.t.C }
func (r realTicker) Stop()               { r.t.Stop() }

// tickInterval is how often buffered traces are checked for their deadline:
// a tenth of decision_wait, clamped to [10ms, 1s].
func tickInterval(wait time.Duration) time.Duration {
	return min(max(wait/10, 10*time.Millisecond), time.Second)
}
