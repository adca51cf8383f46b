package granularprocessor // import "github.com/granular-dev/granular/collector-plugin/granularprocessor"

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/zap"

	"github.com/granular-dev/granular/collector-plugin/granularartifactsextension"
)

// decision is what happens to a trace's spans and artifacts, cached so that
// late spans follow it.
type decision uint8

const (
	decisionKeepAll      decision = iota + 1 // violated: everything kept, rollup on the root
	decisionKeepStripped                     // healthy: kept without Granular detail
	decisionDrop                             // healthy: dropped (drop mode, or sampled out)
)

func (d decision) String() string {
	switch d {
	case decisionKeepAll:
		return "keep"
	case decisionKeepStripped:
		return "strip"
	default:
		return "drop"
	}
}

// traceEntry is one trace waiting for its decision.
type traceEntry struct {
	id       pcommon.TraceID
	traces   ptrace.Traces
	logs     plog.Logs // granular.artifact records of this trace
	spans    int
	records  int
	deadline time.Time
	elem     *list.Element
}

// decided is a trace taken out of the buffer with its decision.
type decided struct {
	id       pcommon.TraceID
	decision decision
	verdict  verdict
	traces   ptrace.Traces
	logs     plog.Logs
	records  int
}

// decisionCache remembers the decisions of the last size traces.
type decisionCache struct {
	size int
	m    map[pcommon.TraceID]decision
	ring []pcommon.TraceID
	next int
}

func newDecisionCache(size int) decisionCache {
	return decisionCache{size: size, m: make(map[pcommon.TraceID]decision, min(size, 1<<16))}
}

func (dc *decisionCache) get(id pcommon.TraceID) (decision, bool) {
	d, ok := dc.m[id]
	return d, ok
}

func (dc *decisionCache) put(id pcommon.TraceID, d decision) {
	if dc.size <= 0 {
		return
	}
	if _, ok := dc.m[id]; ok {
		dc.m[id] = d
		return
	}
	if len(dc.ring) < dc.size {
		dc.ring = append(dc.ring, id)
	} else {
		delete(dc.m, dc.ring[dc.next])
		dc.ring[dc.next] = id
		dc.next = (dc.next + 1) % dc.size
	}
	dc.m[id] = d
}

// core is the state shared by the traces and logs instances of one
// configured granular processor: the buffer must see a trace's spans and its
// artifact records together.
type core struct {
	id     component.ID
	cfg    *Config
	judge  *judge
	logger *zap.Logger
	clock  clock
	tel    *telemetry

	mu            sync.Mutex
	buffer        map[pcommon.TraceID]*traceEntry
	order         list.List // *traceEntry in arrival order, so also deadline order
	bufferedItems int
	cache         decisionCache
	nextTraces    consumer.Traces
	nextLogs      consumer.Logs
	store         granularartifactsextension.Store
	instances     int
	started       int
	running       bool
	stop          chan struct{}
	done          chan struct{}
	release       func() // removes the core from its factory

	afterTick func() // test hook, called after every tick
}

func newCore(id component.ID, cfg *Config, set component.TelemetrySettings, clk clock) (*core, error) {
	j, err := newJudge(cfg)
	if err != nil {
		return nil, err
	}
	c := &core{
		id:     id,
		cfg:    cfg,
		judge:  j,
		logger: set.Logger,
		clock:  clk,
		buffer: map[pcommon.TraceID]*traceEntry{},
		cache:  newDecisionCache(cfg.DecisionCacheSize),
	}
	if c.tel, err = newTelemetry(set.MeterProvider, c); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *core) bufferedCounts() (traces, items int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.buffer), c.bufferedItems
}

// start is called by each instance; the first one finds the artifact store
// and starts the decision loop.
func (c *core) start(host component.Host) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started == 0 {
		if ext := c.cfg.Artifacts.Extension; ext != nil {
			comp, ok := host.GetExtensions()[*ext]
			if !ok {
				return fmt.Errorf("artifacts.extension %q is not running; add it under extensions: and service.extensions", ext.String())
			}
			st, ok := comp.(granularartifactsextension.Store)
			if !ok {
				return fmt.Errorf("artifacts.extension %q is not a granular_artifacts extension", ext.String())
			}
			c.store = st
		}
		c.stop, c.done = make(chan struct{}), make(chan struct{})
		c.running = true
		go c.run(c.clock.NewTicker(tickInterval(c.cfg.DecisionWait)))
	}
	c.started++
	return nil
}

// shutdown is called by each started instance; the last one stops the loop
// and judges every buffered trace at once, so nothing is lost on shutdown.
func (c *core) shutdown(ctx context.Context) error {
	c.mu.Lock()
	c.started--
	if c.started > 0 || !c.running {
		c.mu.Unlock()
		return nil
	}
	c.running = false
	close(c.stop)
	c.mu.Unlock()
	<-c.done

	c.mu.Lock()
	ready := c.drainLocked()
	c.mu.Unlock()
	err := c.emit(ctx, ready)
	c.tel.shutdown()
	return err
}

func (c *core) run(t ticker) {
	defer close(c.done)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case now := <-t.C():
			c.tick(now)
		}
	}
}

func (c *core) tick(now time.Time) {
	c.mu.Lock()
	var ready []decided
	for {
		front := c.order.Front()
		if front == nil {
			break
		}
		e := front.Value.(*traceEntry)
		if e.deadline.After(now) {
			break
		}
		ready = append(ready, c.decideLocked(e, ""))
	}
	c.mu.Unlock()
	if err := c.emit(context.Background(), ready); err != nil {
		c.logger.Warn("granular processor could not forward decided traces", zap.Error(err))
	}
	if c.afterTick != nil {
		c.afterTick()
	}
}

func (c *core) drainLocked() []decided {
	ready := make([]decided, 0, len(c.buffer))
	for front := c.order.Front(); front != nil; front = c.order.Front() {
		ready = append(ready, c.decideLocked(front.Value.(*traceEntry), ""))
	}
	return ready
}

// entryLocked returns the buffer entry of id, creating it and enforcing
// max_traces (judging the oldest trace early) when needed.
func (c *core) entryLocked(id pcommon.TraceID, now time.Time, ready *[]decided) *traceEntry {
	if e, ok := c.buffer[id]; ok {
		return e
	}
	for len(c.buffer) >= c.cfg.MaxTraces {
		*ready = append(*ready, c.decideLocked(c.order.Front().Value.(*traceEntry), reasonMaxTraces))
	}
	e := &traceEntry{id: id, traces: ptrace.NewTraces(), logs: plog.NewLogs(), deadline: now.Add(c.cfg.DecisionWait)}
	e.elem = c.order.PushBack(e)
	c.buffer[id] = e
	return e
}

// decideLocked removes e from the buffer and judges it.
func (c *core) decideLocked(e *traceEntry, evictReason string) decided {
	c.order.Remove(e.elem)
	delete(c.buffer, e.id)
	c.bufferedItems -= e.spans + e.records
	if evictReason != "" {
		c.tel.add(c.tel.evicted, 1, attrReason, evictReason)
	}
	d := decided{id: e.id, traces: e.traces, logs: e.logs, records: e.records}
	if e.spans == 0 {
		// Only artifact records arrived: the library sends them only for
		// violating spans, so keep them, but let spans arriving later be
		// judged on their own (no cached decision).
		d.decision = decisionKeepAll
		c.tel.add(c.tel.decisions, 1, attrOutcome, outcomeNoSpans)
		return d
	}
	d.verdict = c.judge.judgeTrace(e.traces)
	outcome := c.classify(&d)
	c.tel.add(c.tel.decisions, 1, attrOutcome, outcome)
	c.cache.put(e.id, d.decision)
	return d
}

func (c *core) classify(d *decided) string {
	if d.verdict.violated {
		d.decision = decisionKeepAll
		return outcomeViolated
	}
	switch c.cfg.Healthy {
	case HealthyDrop:
		d.decision = decisionDrop
		return outcomeDropped
	case HealthySample:
		if !sampled(d.id, c.cfg.HealthySamplePercent) {
			d.decision = decisionDrop
			return outcomeSampledOut
		}
	}
	d.decision = decisionKeepStripped
	return outcomeStripped
}

// emit forwards decided traces and handles their artifacts.
func (c *core) emit(ctx context.Context, ready []decided) error {
	if len(ready) == 0 {
		return nil
	}
	outTraces := ptrace.NewTraces()
	outLogs := plog.NewLogs()
	for i := range ready {
		d := &ready[i]
		url := ""
		if d.records > 0 {
			url = c.handleArtifacts(ctx, d.decision, d.logs, outLogs, d.verdict.slowSpanID)
		}
		switch d.decision {
		case decisionKeepAll:
			if d.verdict.violated {
				rollup(d.traces, d.verdict, url)
			}
		case decisionKeepStripped:
			c.recordStrip(strip(d.traces))
		default:
			continue
		}
		d.traces.ResourceSpans().MoveAndAppendTo(outTraces.ResourceSpans())
	}
	return c.forward(ctx, outTraces, outLogs)
}

func (c *core) forward(ctx context.Context, td ptrace.Traces, ld plog.Logs) error {
	var errs []error
	c.mu.Lock()
	nextTraces, nextLogs := c.nextTraces, c.nextLogs
	c.mu.Unlock()
	if nextTraces != nil && td.SpanCount() > 0 {
		errs = append(errs, nextTraces.ConsumeTraces(ctx, td))
	}
	if nextLogs != nil && ld.LogRecordCount() > 0 {
		errs = append(errs, nextLogs.ConsumeLogs(ctx, ld))
	}
	return errors.Join(errs...)
}

func (c *core) recordStrip(st stripStats) {
	c.tel.addPlain(c.tel.strippedBytes, st.bytes)
	c.tel.addPlain(c.tel.strippedAttrs, st.attributes)
	c.tel.addPlain(c.tel.strippedEvents, st.events)
	c.tel.addPlain(c.tel.strippedS, st.spans)
}
