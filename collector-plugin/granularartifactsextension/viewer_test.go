package granularartifactsextension

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/granular-dev/granular/collector-plugin/internal/plugintest"
)

// viewerSource is the page the embedded copy is synced from.
const viewerSource = "../../bridge/src/viewer/viewer.html"

func TestEmbeddedViewerMatchesSource(t *testing.T) {
	src, err := os.ReadFile(viewerSource)
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("no %s in this checkout: nothing to compare the embedded copy with", viewerSource)
	}
	require.NoError(t, err)
	assert.True(t, string(src) == viewerPage,
		"granularartifactsextension/viewer/viewer.html differs from %s: run collector-plugin/sync-viewer.sh", viewerSource)
}

func TestEmbeddedViewerHasPlaceholders(t *testing.T) {
	assert.Contains(t, viewerPage, `<meta name="granular-artifact" content="`+placeholderArtifactURL+`">`)
	assert.Regexp(t, `<title>[^<]*`+regexpQuote(placeholderTitle)+`[^<]*</title>`, viewerPage)
}

func regexpQuote(s string) string {
	return strings.NewReplacer("{", `\{`, "}", `\}`).Replace(s)
}

func TestRenderViewerEscapes(t *testing.T) {
	page := string(renderViewer(`/a?x=1&y="2"'<b>`, `T <script>alert('x')</script> & "q"`))
	assert.NotContains(t, page, "{{GRANULAR_")
	assert.Contains(t, page, `<meta name="granular-artifact" content="/a?x=1&amp;y=&#34;2&#34;&#39;&lt;b&gt;">`)
	assert.Contains(t, page, `T &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &#34;q&#34;`)
	assert.NotContains(t, page, "<script>alert")
}

// assertPageHeaders checks what every HTML answer of the store carries.
func assertPageHeaders(t *testing.T, resp *http.Response) {
	t.Helper()
	assert.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	csp := resp.Header.Get("Content-Security-Policy")
	assert.Contains(t, csp, "default-src 'none'")
	assert.Contains(t, csp, "connect-src 'self'")
	assert.NotContains(t, csp, "*", "the page may fetch from its own origin only")
}

func TestViewServesThePageOfAStoredArtifact(t *testing.T) {
	e, base := startExtension(t, nil)
	_, err := e.PutArtifact(context.Background(), Artifact{ID: "trace1-span1", Data: []byte{1, 2, 3}})
	require.NoError(t, err)

	resp, body := plugintest.Get(t, base+"/view/trace1-span1")
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	assertPageHeaders(t, resp)
	page := string(body)
	assert.Contains(t, page, `<meta name="granular-artifact" content="/artifacts/trace1-span1">`)
	assert.Contains(t, page, "<title>Granular · trace1-span1</title>")

	// the meta tag's URL, resolved against the page, serves the artifact
	resp, body = plugintest.Get(t, resolve(t, base+"/view/trace1-span1", "/artifacts/trace1-span1"))
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, []byte{1, 2, 3}, body)

	resp, body = plugintest.Get(t, base+"/view/missing")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.Contains(t, string(body), `artifact "missing" is not in this store`)
	assert.NotEqual(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
}

func resolve(t *testing.T, page, ref string) string {
	t.Helper()
	p, err := url.Parse(page)
	require.NoError(t, err)
	r, err := url.Parse(ref)
	require.NoError(t, err)
	return p.ResolveReference(r).String()
}

func TestViewRejectsTraversal(t *testing.T) {
	var dir string
	_, base := startExtension(t, func(c *Config) { dir = c.Directory })
	secret := filepath.Join(filepath.Dir(dir), "secret")
	require.NoError(t, os.WriteFile(secret, []byte("secret"), 0o600))
	for _, path := range []string{"/view/..%2Fsecret", "/view/%2e%2e%2fsecret", "/view/..%5csecret", "/view/%2e%2e", "/view/a%00b"} {
		resp, body := plugintest.Get(t, base+path)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, path)
		assert.Contains(t, string(body), "invalid artifact id", path)
	}
	for _, path := range []string{"/view/../secret", "/view/x/../../secret", "/view/a/b"} {
		resp, body := plugintest.Get(t, base+path)
		assert.NotEqual(t, http.StatusOK, resp.StatusCode, path)
		assert.NotContains(t, string(body), "secret", path)
	}
}

func noRedirects() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func TestViewIndexRedirectsAnArtifactURLToItsViewer(t *testing.T) {
	_, base := startExtension(t, nil)
	for link, want := range map[string]string{
		"http://localhost:16700/artifacts/t-s":         "/view/t-s",
		"https://x.example/granular/artifacts/a.b_c-1": "/view/a.b_c-1",
		"/artifacts/t-s": "/view/t-s",
	} {
		resp, err := noRedirects().Get(base + "/view/?artifact=" + url.QueryEscape(link))
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusSeeOther, resp.StatusCode, link)
		assert.Equal(t, want, resp.Header.Get("Location"), link)
	}
	for _, link := range []string{"", "http://x/artifacts/", "http://x/artifacts/..", "http://x/other/t-s", "http://x/artifacts/a%2Fb", "http://x/artifacts/a/b"} {
		resp, err := noRedirects().Get(base + "/view/?artifact=" + url.QueryEscape(link))
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, link)
		assert.Contains(t, string(body), "is not an artifact URL", link)
	}
}

func TestViewIndexListsViewerLinks(t *testing.T) {
	e, base := startExtension(t, nil)
	resp, body := plugintest.Get(t, base+"/view/")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assertPageHeaders(t, resp)
	assert.Contains(t, string(body), "No artifacts stored.")

	_, err := e.PutArtifact(context.Background(), Artifact{ID: "t-s", Data: []byte("x")})
	require.NoError(t, err)
	resp, body = plugintest.Get(t, base+"/view/")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), `<a href="/view/t-s">t-s</a>`)
	assert.Contains(t, string(body), `<a href="/artifacts/t-s">download</a>`)
}

func TestPublicURLPathPrefixesPageLinks(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	e, _ := startExtension(t, func(c *Config) {
		c.ServerConfig.NetAddr.Endpoint = addr
		c.PublicURL = "https://artifacts.example.com/granular/"
	})
	_, err = e.PutArtifact(context.Background(), Artifact{ID: "t-s", Data: []byte("x")})
	require.NoError(t, err)

	_, body := plugintest.Get(t, "http://"+addr+"/view/t-s")
	assert.Contains(t, string(body), `<meta name="granular-artifact" content="/granular/artifacts/t-s">`)

	_, body = plugintest.Get(t, "http://"+addr+"/artifacts/")
	var l listing
	require.NoError(t, json.Unmarshal(body, &l))
	require.Len(t, l.Artifacts, 1)
	assert.Equal(t, "/granular/artifacts/t-s", l.Artifacts[0].URL)
	assert.Equal(t, "/granular/view/t-s", l.Artifacts[0].View)

	resp, err := noRedirects().Get("http://" + addr + "/view/?artifact=" + url.QueryEscape("https://artifacts.example.com/granular/artifacts/t-s"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, "/granular/view/t-s", resp.Header.Get("Location"))
}

// The Perfetto UI fetches artifacts from the browser; by default only its
// origin may read them.
func TestDefaultCORSAllowsOnlyThePerfettoUI(t *testing.T) {
	e, _ := startExtension(t, nil)
	url, err := e.PutArtifact(context.Background(), Artifact{ID: "t-s", Data: []byte("x")})
	require.NoError(t, err)
	for origin, want := range map[string]string{PerfettoUIOrigin: PerfettoUIOrigin, "https://evil.example": ""} {
		req, err := http.NewRequest(http.MethodGet, url, http.NoBody)
		require.NoError(t, err)
		req.Header.Set("Origin", origin)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, want, resp.Header.Get("Access-Control-Allow-Origin"), "origin %s", origin)
	}
}
