package granularartifactsextension

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/extension/extensiontest"

	"github.com/granular-dev/granular/collector-plugin/internal/plugintest"
)

func loadConfig(t *testing.T, name string) *Config {
	t.Helper()
	return plugintest.LoadConfig(t, NewFactory(), component.NewIDWithName(Type, name)).(*Config)
}

func TestConfig(t *testing.T) {
	def := loadConfig(t, "")
	assert.Equal(t, NewFactory().CreateDefaultConfig(), def)
	assert.Equal(t, "127.0.0.1:16700", def.ServerConfig.NetAddr.Endpoint)
	assert.Equal(t, filepath.Join(os.TempDir(), "granular-artifacts"), def.Directory)
	assert.Equal(t, int64(1<<30), def.MaxTotalBytes)
	assert.Equal(t, int64(64<<20), def.MaxArtifactBytes)
	assert.Equal(t, 24*time.Hour, def.Retention)
	assert.Equal(t, time.Minute, def.ServerConfig.ReadTimeout)
	assert.Equal(t, time.Minute, def.ServerConfig.ReadHeaderTimeout)
	require.NoError(t, confmap.Validate(def))

	custom := loadConfig(t, "custom")
	want := NewFactory().CreateDefaultConfig().(*Config)
	want.ServerConfig.NetAddr.Endpoint = "127.0.0.1:17700"
	want.Directory = "/var/lib/granular/artifacts"
	want.MaxTotalBytes = 1 << 20
	want.MaxArtifactBytes = 1 << 16
	want.Retention = 2 * time.Hour
	want.PublicURL = "https://artifacts.example.com/"
	assert.Equal(t, want, custom)
	require.NoError(t, confmap.Validate(custom))

	err := confmap.Validate(loadConfig(t, "invalid"))
	require.EqualError(t, err, "endpoint must be set\n"+
		"directory must be set\n"+
		"max_artifact_bytes (20) must not exceed max_total_bytes (10)\n"+
		"retention must not be negative, got -1s\n"+
		"public_url must be an absolute http(s) URL without query or fragment, e.g. https://artifacts.example.com, got \"ftp://example.com\"")
}

func TestValidID(t *testing.T) {
	for _, id := range []string{"a", "art-1", "trace_1.span-2", strings.Repeat("x", 200), "..a", ".hidden"} {
		assert.True(t, ValidID(id), id)
	}
	for _, id := range []string{"", ".", "..", "../x", "a/b", `a\b`, "a b", "%2e%2e", "a\x00", strings.Repeat("x", 201), "ü"} {
		assert.False(t, ValidID(id), id)
	}
}

type testClock struct{ now time.Time }

func (c *testClock) Now() time.Time { return c.now }

func TestStoreSizeCapEvictsOldest(t *testing.T) {
	dir := t.TempDir()
	clk := &testClock{now: time.Unix(1000, 0)}
	s, err := openStore(dir, 10, 6, 0, clk.Now)
	require.NoError(t, err)
	defer s.close()

	require.NoError(t, s.put("a", []byte("aaaa")))
	clk.now = clk.now.Add(time.Second)
	require.NoError(t, s.put("b", []byte("bbbb")))
	clk.now = clk.now.Add(time.Second)
	require.NoError(t, s.put("c", []byte("cc"))) // 10 bytes: fits exactly
	assert.Equal(t, int64(10), s.totalBytes())
	clk.now = clk.now.Add(time.Second)
	require.NoError(t, s.put("d", []byte("ddd"))) // evicts a
	assert.Equal(t, []string{"d", "c", "b"}, ids(s.list()))
	assert.Equal(t, int64(9), s.totalBytes())

	err = s.put("e", []byte("1234567"))
	require.ErrorIs(t, err, ErrTooLarge)
	assert.Equal(t, []string{"d", "c", "b"}, ids(s.list()), "a rejected artifact evicts nothing")

	// replacing an id frees its old size first
	clk.now = clk.now.Add(time.Second)
	require.NoError(t, s.put("b", []byte("b")))
	assert.Equal(t, int64(6), s.totalBytes())

	// the directory holds exactly the listed files, mode 0600
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		fi, err := e.Info()
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), e.Name())
	}
	assert.ElementsMatch(t, []string{"a_b", "a_c", "a_d"}, names)
	di, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), di.Mode().Perm()&0o700)
}

func TestStoreRetentionAndReopen(t *testing.T) {
	dir := t.TempDir()
	clk := &testClock{now: time.Now()}
	s, err := openStore(dir, 100, 100, time.Hour, clk.Now)
	require.NoError(t, err)
	require.NoError(t, s.put("old", []byte("x")))
	clk.now = clk.now.Add(50 * time.Minute)
	require.NoError(t, s.put("new", []byte("y")))
	clk.now = clk.now.Add(20 * time.Minute)
	assert.Equal(t, []string{"new"}, ids(s.list()))
	_, err = os.Stat(filepath.Join(dir, "a_old"))
	assert.True(t, errors.Is(err, os.ErrNotExist))
	require.NoError(t, s.close())

	// a crash leftover and foreign files are handled on reopen
	require.NoError(t, os.WriteFile(filepath.Join(dir, "t_deadbeef"), []byte("partial"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "README"), []byte("not ours"), 0o600))
	s, err = openStore(dir, 100, 100, 0, time.Now)
	require.NoError(t, err)
	defer s.close()
	assert.Equal(t, []string{"new"}, ids(s.list()))
	_, err = os.Stat(filepath.Join(dir, "t_deadbeef"))
	assert.True(t, errors.Is(err, os.ErrNotExist))
}

func TestStoreRejectsTraversal(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "store")
	secret := filepath.Join(parent, "secret")
	require.NoError(t, os.WriteFile(secret, []byte("secret"), 0o600))
	s, err := openStore(dir, 100, 100, 0, time.Now)
	require.NoError(t, err)
	defer s.close()
	for _, id := range []string{"../secret", "..", "/etc/passwd", "a/../../secret"} {
		require.ErrorIs(t, s.put(id, []byte("x")), ErrInvalidID, id)
		_, _, err := s.open(id)
		require.ErrorIs(t, err, ErrInvalidID, id)
	}
	// a symlink planted in the store cannot be followed out of it
	require.NoError(t, os.Symlink(secret, filepath.Join(dir, "a_link")))
	s2, err := openStore(dir, 100, 100, 0, time.Now)
	require.NoError(t, err)
	defer s2.close()
	_, _, err = s2.open("link")
	require.ErrorIs(t, err, ErrNotFound)
}

func ids(infos []Info) []string {
	out := make([]string, 0, len(infos))
	for _, in := range infos {
		out = append(out, in.ID)
	}
	return out
}

func startExtension(t testing.TB, mutate func(*Config)) (*artifactsExtension, string) {
	t.Helper()
	f := NewFactory()
	cfg := f.CreateDefaultConfig().(*Config)
	cfg.ServerConfig.NetAddr.Endpoint = "127.0.0.1:0"
	cfg.Directory = filepath.Join(t.TempDir(), "artifacts")
	if mutate != nil {
		mutate(cfg)
	}
	require.NoError(t, cfg.Validate())
	ext, err := f.Create(context.Background(), extensiontest.NewNopSettings(Type), cfg)
	require.NoError(t, err)
	require.NoError(t, ext.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, ext.Shutdown(context.Background())) })
	e := ext.(*artifactsExtension)
	return e, e.baseURL
}

func TestHTTPServesArtifacts(t *testing.T) {
	e, base := startExtension(t, nil)
	assert.True(t, strings.HasPrefix(base, "http://127.0.0.1:"))
	url, err := e.PutArtifact(context.Background(), Artifact{ID: "trace1-span1", Format: "perfetto-protobuf", Data: []byte{0x0a, 0x00, 0xff}})
	require.NoError(t, err)
	assert.Equal(t, base+"/artifacts/trace1-span1", url)

	resp, body := plugintest.Get(t, url)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "application/octet-stream", resp.Header.Get("Content-Type"))
	assert.Equal(t, []byte{0x0a, 0x00, 0xff}, body)

	resp, body = plugintest.Get(t, base+"/artifacts/")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var l listing
	require.NoError(t, json.Unmarshal(body, &l))
	require.Len(t, l.Artifacts, 1)
	assert.Equal(t, "trace1-span1", l.Artifacts[0].ID)
	assert.Equal(t, int64(3), l.Artifacts[0].Bytes)
	assert.Equal(t, "/artifacts/trace1-span1", l.Artifacts[0].URL)

	resp, _ = plugintest.Get(t, base+"/artifacts/missing")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)

	resp, err = http.Post(url, "application/octet-stream", strings.NewReader("x"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}

func TestPublicURL(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	e, base := startExtension(t, func(c *Config) {
		c.ServerConfig.NetAddr.Endpoint = addr
		c.PublicURL = "https://artifacts.example.com/granular/"
	})
	assert.Equal(t, "https://artifacts.example.com/granular", base)
	url, err := e.PutArtifact(context.Background(), Artifact{ID: "t-s", Data: []byte("x")})
	require.NoError(t, err)
	assert.Equal(t, "https://artifacts.example.com/granular/artifacts/t-s", url)
	// still served on the listen address
	resp, body := plugintest.Get(t, "http://"+addr+"/artifacts/t-s")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, []byte("x"), body)
}

func TestHTTPPathTraversal(t *testing.T) {
	var dir string
	_, base := startExtension(t, func(c *Config) { dir = c.Directory })
	secret := filepath.Join(filepath.Dir(dir), "secret")
	require.NoError(t, os.WriteFile(secret, []byte("secret"), 0o600))

	for _, path := range []string{
		"/artifacts/..%2Fsecret",
		"/artifacts/%2e%2e%2fsecret",
		"/artifacts/..%5csecret",
		"/artifacts/%2e%2e",
		"/artifacts/a%00b",
	} {
		resp, body := plugintest.Get(t, base+path)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, path)
		assert.NotContains(t, string(body), "secret", path)
	}
	// paths the mux cleans never reach a handler for another file either
	for _, path := range []string{"/artifacts/../secret", "/artifacts/x/../../secret", "/secret", "/artifacts/a/b"} {
		resp, body := plugintest.Get(t, base+path)
		assert.NotEqual(t, http.StatusOK, resp.StatusCode, path)
		assert.NotContains(t, string(body), "secret", path)
	}
}

func TestPutTooLarge(t *testing.T) {
	e, _ := startExtension(t, func(c *Config) { c.MaxArtifactBytes = 4 })
	_, err := e.PutArtifact(context.Background(), Artifact{ID: "big", Data: []byte("12345")})
	require.ErrorIs(t, err, ErrTooLarge)
	_, err = e.PutArtifact(context.Background(), Artifact{ID: "../x", Data: []byte("1")})
	require.ErrorIs(t, err, ErrInvalidID)
}

func TestLifecycleErrors(t *testing.T) {
	f := NewFactory()
	cfg := f.CreateDefaultConfig().(*Config)
	ext, err := f.Create(context.Background(), extensiontest.NewNopSettings(Type), cfg)
	require.NoError(t, err)
	_, err = ext.(Store).PutArtifact(context.Background(), Artifact{ID: "a"})
	require.EqualError(t, err, "granular_artifacts extension is not started")
	require.NoError(t, ext.Shutdown(context.Background()), "shutdown without start")

	// a busy port fails Start and leaves nothing open
	e, base := startExtension(t, nil)
	_ = e
	cfg.ServerConfig.NetAddr.Endpoint = strings.TrimPrefix(base, "http://")
	cfg.Directory = t.TempDir()
	ext2, err := f.Create(context.Background(), extensiontest.NewNopSettings(Type), cfg)
	require.NoError(t, err)
	require.Error(t, ext2.Start(context.Background(), componenttest.NewNopHost()))
	require.NoError(t, ext2.Shutdown(context.Background()))
}
