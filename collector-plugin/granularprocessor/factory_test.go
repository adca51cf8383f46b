package granularprocessor

// Factory and lifecycle tests, the ones mdatagen generates for contrib
// components (generated_component_test.go) and more, written by hand since
// mdatagen is not used here (see metadata.yaml).

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/processor/processortest"
	"gopkg.in/yaml.v3"

	"github.com/granular-dev/granular/collector-plugin/internal/plugintest"
)

// TestFactory holds the factory to metadata.yaml (type, stability per
// signal) and its default configuration to the rules every component
// configuration follows.
func TestFactory(t *testing.T) {
	f := NewFactory()
	plugintest.CheckFactory(t, f, "processor", map[string]component.StabilityLevel{
		"traces":  f.TracesStability(),
		"metrics": f.MetricsStability(),
		"logs":    f.LogsStability(),
	})
}

// configRow is a row of the README's configuration table: | `key` | default | meaning |.
var configRow = regexp.MustCompile("(?m)^\\| `([a-z_.]+)` \\| ([^|]*?) \\|")

// TestDefaultConfigIsTheREADMEs holds the defaults a user reads in the
// README's configuration table to the code's: one row per key, and the
// defaults the rows give (`{}` an empty map, none no value) make the
// default config.
func TestDefaultConfigIsTheREADMEs(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(readme), "\n## Configuration\n")
	require.True(t, ok, "README.md has no Configuration section")
	section, _, _ = strings.Cut(section, "\n## ")

	var keys []string
	table := map[string]any{}
	for _, row := range configRow.FindAllStringSubmatch(section, -1) {
		key, cell := row[1], strings.TrimSpace(row[2])
		keys = append(keys, strings.ReplaceAll(key, ".", confmap.KeyDelimiter))
		if cell == "none" {
			continue
		}
		text, quoted := strings.CutPrefix(cell, "`")
		text, closed := strings.CutSuffix(text, "`")
		require.True(t, quoted && closed, "README default of %s: %q is neither `value` nor none", key, cell)
		var v any = text // a value YAML would need quoted, like *=500ms
		if err := yaml.Unmarshal([]byte(text), &v); err != nil {
			v = text
		}
		if m, isMap := v.(map[string]any); isMap && len(m) == 0 {
			continue
		}
		parent, name := table, key
		for {
			head, rest, nested := strings.Cut(name, ".")
			if !nested {
				break
			}
			if parent[head] == nil {
				parent[head] = map[string]any{}
			}
			parent, name = parent[head].(map[string]any), rest
		}
		parent[name] = v
	}

	def := confmap.New()
	require.NoError(t, def.Marshal(createDefaultConfig()))
	assert.ElementsMatch(t, def.AllKeys(), keys, "the README's configuration rows against the config's keys")
	got := &Config{}
	require.NoError(t, confmap.NewFromStringMap(table).Unmarshal(got))
	assert.Equal(t, createDefaultConfig(), got, "the README's defaults against createDefaultConfig")
}

// TestComponentLifecycle creates each signal's processor from metadata.yaml's
// tests.config, starts it, feeds it and shuts it down: whatever is buffered
// then is judged and forwarded, nothing is lost.
func TestComponentLifecycle(t *testing.T) {
	f := NewFactory()
	cfg := plugintest.LoadMetadata(t).TestsConfig(t, f)
	ctx := context.Background()
	set := processortest.NewNopSettings(Type)
	host := componenttest.NewNopHost()

	t.Run("traces", func(t *testing.T) {
		sink := new(consumertest.TracesSink)
		p, err := f.CreateTraces(ctx, set, cfg, sink)
		require.NoError(t, err)
		require.NoError(t, p.Start(ctx, host))
		require.NoError(t, p.ConsumeTraces(ctx, violatingTrace(1)))
		assert.Zero(t, sink.SpanCount(), "held until decision_wait")
		require.NoError(t, p.Shutdown(ctx))
		assert.Equal(t, 3, sink.SpanCount(), "judged and forwarded at shutdown")
	})
	t.Run("logs", func(t *testing.T) {
		sink := new(consumertest.LogsSink)
		p, err := f.CreateLogs(ctx, set, cfg, sink)
		require.NoError(t, err)
		require.NoError(t, p.Start(ctx, host))
		ld := artifactLog(1, 1, "a", []byte("perfetto"))
		ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().AppendEmpty().Body().SetStr("app log")
		require.NoError(t, p.ConsumeLogs(ctx, ld))
		assert.Equal(t, 1, sink.LogRecordCount(), "ordinary records pass at once")
		require.NoError(t, p.Shutdown(ctx))
		assert.Equal(t, 2, sink.LogRecordCount(), "the artifact is forwarded at shutdown (no store configured)")
	})
	t.Run("shutdown without start", func(t *testing.T) {
		tp, err := f.CreateTraces(ctx, set, cfg, consumertest.NewNop())
		require.NoError(t, err)
		require.NoError(t, tp.Shutdown(ctx))
		lp, err := f.CreateLogs(ctx, set, cfg, consumertest.NewNop())
		require.NoError(t, err)
		require.NoError(t, lp.Shutdown(ctx))
	})
}

// TestSharedCoreLifecycle: the traces and logs instances of one configured
// processor share a core, which runs until the last of them stops.
func TestSharedCoreLifecycle(t *testing.T) {
	f := NewFactory()
	cfg := f.CreateDefaultConfig()
	sink := new(consumertest.TracesSink)
	logSink := new(consumertest.LogsSink)
	set := processortest.NewNopSettings(Type)
	tp, err := f.CreateTraces(context.Background(), set, cfg, sink)
	require.NoError(t, err)
	lp, err := f.CreateLogs(context.Background(), set, cfg, logSink)
	require.NoError(t, err)
	assert.True(t, tp.Capabilities().MutatesData)

	// a second pipeline of a signal may not share the instance
	_, err = f.CreateTraces(context.Background(), set, cfg, sink)
	require.EqualError(t, err, `processor "granular" is used in more than one traces pipeline; give each pipeline its own instance (e.g. granular/a, granular/b)`)
	_, err = f.CreateLogs(context.Background(), set, cfg, logSink)
	require.EqualError(t, err, `processor "granular" is used in more than one logs pipeline; give each pipeline its own instance (e.g. granular/a, granular/b)`)

	host := componenttest.NewNopHost()
	require.NoError(t, tp.Start(context.Background(), host))
	require.NoError(t, lp.Start(context.Background(), host))
	require.NoError(t, tp.ConsumeTraces(context.Background(), violatingTrace(1)))
	ordinary := plog.NewLogs()
	ordinary.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty().Body().SetStr("hello")
	require.NoError(t, lp.ConsumeLogs(context.Background(), ordinary))
	assert.Equal(t, 1, logSink.LogRecordCount(), "ordinary logs pass through at once")
	require.NoError(t, tp.Shutdown(context.Background()))
	assert.Equal(t, 0, sink.SpanCount(), "the core runs until its last instance stops")
	require.NoError(t, lp.Shutdown(context.Background()))
	assert.Equal(t, 3, sink.SpanCount())
	require.NoError(t, lp.Shutdown(context.Background()), "shutdown is idempotent")

	// after shutdown the factory creates a fresh core for the same ID
	tp2, err := f.CreateTraces(context.Background(), set, cfg, sink)
	require.NoError(t, err)
	require.NoError(t, tp2.Shutdown(context.Background()), "shutdown without start")
}

func TestVerifyShutdown(t *testing.T) {
	processortest.VerifyShutdown(t, NewFactory(), NewFactory().CreateDefaultConfig())
}

func TestStartFailsWithMissingExtension(t *testing.T) {
	extID := component.MustNewID("granular_artifacts")
	f := NewFactory()
	cfg := f.CreateDefaultConfig().(*Config)
	cfg.Artifacts.Extension = &extID
	tp, err := f.CreateTraces(context.Background(), processortest.NewNopSettings(Type), cfg, consumertest.NewNop())
	require.NoError(t, err)
	err = tp.Start(context.Background(), componenttest.NewNopHost())
	require.EqualError(t, err, `artifacts.extension "granular_artifacts" is not running; add it under extensions: and service.extensions`)
	require.NoError(t, tp.Shutdown(context.Background()))

	tp, err = f.CreateTraces(context.Background(), processortest.NewNopSettings(Type), cfg, consumertest.NewNop())
	require.NoError(t, err)
	wrong := hostWithExtensions{exts: map[component.ID]component.Component{extID: notAStore{}}}
	err = tp.Start(context.Background(), wrong)
	require.EqualError(t, err, `artifacts.extension "granular_artifacts" is not a granular_artifacts extension`)
	require.NoError(t, tp.Shutdown(context.Background()))
}

type notAStore struct{}

func (notAStore) Start(context.Context, component.Host) error { return nil }
func (notAStore) Shutdown(context.Context) error              { return nil }
