package granularartifactsextension

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// exchange sends head (a request line and headers, without the blank line
// that ends them) on a new connection, then bodyBytes bytes of body in the
// background while it reads the answer. It returns the answer's status,
// whether the server then closed the connection, and how many body bytes
// the client's kernel accepted meanwhile (socket buffers included: an
// upper bound on what the server could have read).
func exchange(t *testing.T, base, head string, bodyBytes int) (status int, closed bool, sent int64) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	wrote := make(chan int64, 1)
	go func() {
		if _, err := io.WriteString(conn, head+"\r\n\r\n"); err != nil {
			wrote <- 0
			return
		}
		n, _ := io.CopyN(conn, zeros{}, int64(bodyBytes))
		wrote <- n
	}()
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	require.NoError(t, err, "an answer to %.60q", head)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.Close { // the server said it closes: check that it did
		_, err = r.ReadByte()
		closed = err == io.EOF || isReset(err)
	}
	// Ends a writer the server neither reads nor cut off.
	conn.Close()
	return resp.StatusCode, closed, <-wrote
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// Heads over MaxHeaderBytes (long headers, many headers, long URLs) are
// answered 431 and the connection is closed; heads under it are served.
func TestRequestHeadIsCapped(t *testing.T) {
	_, base := startExtension(t, nil)
	long := func(n int) string { return strings.Repeat("a", n) }
	many := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "\r\nX-Header-%d: value", i)
		}
		return b.String()
	}
	for _, tc := range []struct {
		name, head string
		status     int
	}{
		{"1 MiB header", "GET /artifacts/x HTTP/1.1\r\nHost: store\r\nX-Big: " + long(1<<20), http.StatusRequestHeaderFieldsTooLarge},
		{"10,000 headers", "GET /artifacts/x HTTP/1.1\r\nHost: store" + many(10_000), http.StatusRequestHeaderFieldsTooLarge},
		{"100 KiB URL", "GET /artifacts/" + long(100<<10) + " HTTP/1.1\r\nHost: store", http.StatusRequestHeaderFieldsTooLarge},
		{"header just under the cap", "GET /artifacts/x HTTP/1.1\r\nHost: store\r\nX-Big: " + long(MaxHeaderBytes-100), http.StatusNotFound},
		{"1,000 headers", "GET /artifacts/x HTTP/1.1\r\nHost: store" + many(1_000), http.StatusNotFound},
		{"8 KiB URL", "GET /artifacts/" + long(8<<10) + " HTTP/1.1\r\nHost: store", http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, closed, _ := exchange(t, base, tc.head, 0)
			assert.Equal(t, tc.status, status)
			if tc.status == http.StatusRequestHeaderFieldsTooLarge {
				assert.True(t, closed, "the connection is closed after a 431")
			}
		})
	}
}

// A GET carrying a 10 MiB body is answered without the body being read: the
// server closes the connection after the answer and allocates far less than
// the body, also when the body claims an encoding the confighttp server would
// otherwise decompress in memory (snappy: read whole) or is chunked.
func TestGetBodyIsNeverRead(t *testing.T) {
	e, base := startExtension(t, nil)
	_, err := e.PutArtifact(context.Background(), Artifact{ID: "a", Data: []byte("stored")})
	require.NoError(t, err)
	const body = 10 << 20
	for _, tc := range []struct {
		name, headers string
		status        int
	}{
		{"plain", fmt.Sprintf("Content-Length: %d", body), http.StatusOK},
		{"snappy", fmt.Sprintf("Content-Length: %d\r\nContent-Encoding: snappy", body), http.StatusBadRequest},
		{"gzip", fmt.Sprintf("Content-Length: %d\r\nContent-Encoding: gzip", body), http.StatusBadRequest},
		// A chunked body of zeros is malformed after its first chunk-size line;
		// what counts is that it is not read far.
		{"chunked", "Transfer-Encoding: chunked", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			status, closed, sent := exchange(t, base, "GET /artifacts/a HTTP/1.1\r\nHost: store\r\n"+tc.headers, body)
			runtime.ReadMemStats(&after)
			allocated := after.TotalAlloc - before.TotalAlloc
			t.Logf("%s: answered %d; %d of %d body bytes accepted by the client's socket before the server closed; %d bytes allocated meanwhile",
				tc.name, status, sent, body, allocated)
			assert.Equal(t, tc.status, status)
			assert.True(t, closed, "the connection is closed: the body is never read")
			assert.Less(t, allocated, uint64(1<<20), "memory does not grow with the body")
		})
	}
}

// A body that trickles in is cut off at read_timeout: it holds the
// connection no longer (without the timeout, the answer waits for the body).
func TestTrickledBodyIsCutOffAtReadTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	_, base := startExtension(t, func(c *Config) { c.ServerConfig.ReadTimeout = timeout })
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	start := time.Now()
	_, err = io.WriteString(conn, "GET /artifacts/x HTTP/1.1\r\nHost: store\r\nContent-Length: 1000\r\n\r\n0123456789")
	require.NoError(t, err)
	_, err = io.ReadAll(conn)
	if !isReset(err) {
		require.NoError(t, err)
	}
	took := time.Since(start)
	assert.GreaterOrEqual(t, took, timeout)
	assert.Less(t, took, 3*time.Second, "the connection is let go soon after read_timeout")
}
