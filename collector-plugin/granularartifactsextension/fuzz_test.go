package granularartifactsextension

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzHandler feeds the store's HTTP routes arbitrary methods and request targets (ids,
// traversal attempts, encodings, queries): no panic, only the statuses the routes document or
// a redirect within the store (the mux sends an unclean path to its clean form), and never a
// byte of a file outside the store's directory.
func FuzzHandler(f *testing.F) {
	for _, seed := range []struct{ method, target string }{
		{"GET", "/artifacts/trace1-span1"},
		{"GET", "/artifacts/"},
		{"GET", "/view/trace1-span1"},
		{"GET", "/view/"},
		{"GET", "/view/?artifact=http://127.0.0.1:16700/artifacts/trace1-span1"},
		{"GET", "/view/?artifact=http://x/artifacts/../../secret"},
		{"GET", "/artifacts/..%2fsecret"},
		{"GET", "/artifacts/%2e%2e/secret"},
		{"GET", "/view/..%2F..%2Fsecret"},
		{"POST", "/artifacts/trace1-span1"},
		{"DELETE", "/view/trace1-span1"},
		{"GET", "/artifacts/" + string(bytes.Repeat([]byte("a"), 4096))},
	} {
		f.Add(seed.method, seed.target)
	}
	e, _ := startExtension(f, nil)
	stored := []byte{0x0a, 0x00, 0xff}
	_, err := e.PutArtifact(context.Background(), Artifact{ID: "trace1-span1", Format: "perfetto-protobuf", Data: stored})
	require.NoError(f, err)
	secret := []byte("TOP-SECRET-OUTSIDE-THE-STORE")
	require.NoError(f, os.WriteFile(filepath.Join(filepath.Dir(e.cfg.Directory), "secret"), secret, 0o600))
	handler := e.handler()
	allowed := map[int]bool{200: true, 400: true, 404: true, 405: true}

	f.Fuzz(func(t *testing.T, method, target string) {
		req, err := http.NewRequest(method, "http://store"+target, nil)
		if err != nil {
			return // not a request a client could send
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code >= 300 && rec.Code < 400 {
			if loc := rec.Header().Get("Location"); len(loc) == 0 || loc[0] != '/' {
				t.Fatalf("%s %q redirected outside the store: %d %q", method, target, rec.Code, loc)
			}
			return
		}
		if !allowed[rec.Code] {
			t.Fatalf("%s %q answered %d: %q", method, target, rec.Code, rec.Body.String())
		}
		if bytes.Contains(rec.Body.Bytes(), secret) {
			t.Fatalf("%s %q served a file outside the store", method, target)
		}
		// An empty method is GET to net/http.
		if method != "" && method != http.MethodGet && method != http.MethodHead && rec.Code == 200 {
			t.Fatalf("%s %q answered 200 to a method the routes do not take", method, target)
		}
	})
}
