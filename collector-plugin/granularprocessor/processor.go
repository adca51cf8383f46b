package granularprocessor // import "github.com/granular-dev/granular/collector-plugin/granularprocessor"

import (
	"context"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor"
)

// instance is the part shared by the traces and logs processors: the
// lifecycle of one pipeline's use of a core.
type instance struct {
	core *core

	mu       sync.Mutex
	started  bool
	shutdown bool
}

func (i *instance) Start(_ context.Context, host component.Host) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.started || i.shutdown {
		return nil
	}
	if err := i.core.start(host); err != nil {
		return err
	}
	i.started = true
	return nil
}

func (i *instance) Shutdown(ctx context.Context) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.shutdown {
		return nil
	}
	i.shutdown = true
	var err error
	if i.started {
		err = i.core.shutdown(ctx)
	}
	i.core.mu.Lock()
	i.core.instances--
	last := i.core.instances == 0
	i.core.mu.Unlock()
	if last {
		i.core.release()
	}
	return err
}

func (*instance) Capabilities() consumer.Capabilities {
	return consumer.Capabilities{MutatesData: true}
}

type tracesProcessor struct{ instance }

var _ processor.Traces = (*tracesProcessor)(nil)

func (p *tracesProcessor) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	return p.core.consumeTraces(ctx, td)
}

type logsProcessor struct{ instance }

var _ processor.Logs = (*logsProcessor)(nil)

func (p *logsProcessor) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	return p.core.consumeLogs(ctx, ld)
}
