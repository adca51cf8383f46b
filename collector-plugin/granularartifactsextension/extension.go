package granularartifactsextension // import "github.com/granular-dev/granular/collector-plugin/granularartifactsextension"

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.uber.org/zap"
)

// Artifact is one artifact handed to the store by the granular processor.
type Artifact struct {
	ID      string
	TraceID string
	SpanID  string
	Format  string
	Data    []byte
}

// Store is what the granular processor looks for among the host's
// extensions. PutArtifact returns the URL the artifact is served at.
type Store interface {
	PutArtifact(ctx context.Context, a Artifact) (url string, err error)
	// MaxArtifactBytes is the size of the largest artifact PutArtifact takes
	// (max_artifact_bytes): the processor drops a larger one as it arrives
	// rather than hold it until its trace is decided.
	MaxArtifactBytes() int64
}

type artifactsExtension struct {
	cfg     *Config
	set     component.TelemetrySettings
	now     func() time.Time
	store   *store
	server  *http.Server
	baseURL string
	// pathPrefix is the path of baseURL without its trailing slash ("" or
	// e.g. "/granular"): the pages link artifacts by path under it.
	pathPrefix string
	serveErr   chan error
	stop       chan struct{}
	wg         sync.WaitGroup
}

var (
	_ component.Component = (*artifactsExtension)(nil)
	_ Store               = (*artifactsExtension)(nil)
)

func newExtension(cfg *Config, set component.TelemetrySettings) *artifactsExtension {
	return &artifactsExtension{cfg: cfg, set: set, now: time.Now}
}

func (e *artifactsExtension) Start(ctx context.Context, host component.Host) error {
	st, err := openStore(e.cfg.Directory, e.cfg.MaxTotalBytes, e.cfg.MaxArtifactBytes, e.cfg.Retention, e.now)
	if err != nil {
		return err
	}
	ln, err := e.cfg.ServerConfig.ToListener(ctx)
	if err != nil {
		_ = st.close()
		return err
	}
	srv, err := e.cfg.ServerConfig.ToServer(ctx, host.GetExtensions(), e.set, e.handler())
	if err != nil {
		_ = ln.Close()
		_ = st.close()
		return err
	}
	srv.MaxHeaderBytes = MaxHeaderBytes
	srv.Handler = withoutBody(srv.Handler)
	e.store, e.server = st, srv
	e.baseURL = "http://" + ln.Addr().String()
	if e.cfg.PublicURL != "" {
		e.baseURL = strings.TrimRight(e.cfg.PublicURL, "/")
	}
	if u, err := url.Parse(e.baseURL); err == nil {
		e.pathPrefix = u.Path
	}
	e.stop = make(chan struct{})
	e.wg.Add(2)
	go func() {
		defer e.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.set.Logger.Error("artifact server stopped", zap.Error(err))
		}
	}()
	go func() {
		defer e.wg.Done()
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-e.stop:
				return
			case <-t.C:
				st.sweep()
			}
		}
	}()
	e.set.Logger.Info("Granular artifact store serving", zap.String("url", e.baseURL+"/artifacts/"), zap.String("directory", e.cfg.Directory))
	return nil
}

// Shutdown stops serving and closes the store. It returns at once when the
// extension was never started or is already shut down, as the component
// lifecycle allows Shutdown to be called in either state.
func (e *artifactsExtension) Shutdown(ctx context.Context) error {
	if e.server == nil {
		return nil
	}
	close(e.stop)
	err := e.server.Shutdown(ctx)
	e.wg.Wait()
	err = errors.Join(err, e.store.close())
	e.server = nil
	return err
}

// PutArtifact stores a; it is safe for concurrent use.
func (e *artifactsExtension) PutArtifact(_ context.Context, a Artifact) (string, error) {
	if e.store == nil {
		return "", errors.New("granular_artifacts extension is not started")
	}
	if err := e.store.put(a.ID, a.Data); err != nil {
		return "", err
	}
	return e.baseURL + "/artifacts/" + a.ID, nil
}

// MaxArtifactBytes is max_artifact_bytes.
func (e *artifactsExtension) MaxArtifactBytes() int64 {
	return e.cfg.MaxArtifactBytes
}

// URL is where the running store serves its listing; empty before Start.
func (e *artifactsExtension) URL() string {
	if e.baseURL == "" {
		return ""
	}
	return e.baseURL + "/artifacts/"
}

// MaxHeaderBytes caps a request's head (request line and headers) on the
// store's server; net/http answers a longer one 431 once it has read this much
// plus its 4 KiB of slack, and closes the connection. net/http's default is
// 1 MiB; the store's GETs carry a URL of a few hundred bytes and a browser's
// headers (cookies included: cookies of localhost are sent to every port).
// confighttp has no setting for it.
const MaxHeaderBytes = 64 << 10

// withoutBody hands next every request without its body: the store's routes
// take none, and nothing before them may read one (confighttp's request
// decompression reads a whole body sent with Content-Encoding: snappy into
// memory, up to max_request_body_size, 20 MiB by default). net/http keeps the
// real body: it drops the connection after the answer when more than 256 KiB
// of it is unread, and discards a smaller one (within read_timeout).
func withoutBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A shallow copy: net/http's own request keeps the body it must account for.
		r = r.WithContext(r.Context())
		r.Body = http.NoBody
		next.ServeHTTP(w, r)
	})
}

func (e *artifactsExtension) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /artifacts/{$}", e.serveList)
	mux.HandleFunc("GET /artifacts/{id}", e.serveArtifact)
	mux.HandleFunc("GET /view/{$}", e.serveViewIndex)
	mux.HandleFunc("GET /view/{id}", e.serveView)
	return mux
}

type listing struct {
	Artifacts []listedArtifact `json:"artifacts"`
}

type listedArtifact struct {
	Info
	// URL and View are paths on the store's public URL: the artifact and
	// its viewer page.
	URL  string `json:"url"`
	View string `json:"view"`
}

// listed is the stored artifacts, newest first, with their paths.
func (e *artifactsExtension) listed() []listedArtifact {
	infos := e.store.list()
	out := make([]listedArtifact, 0, len(infos))
	for _, in := range infos {
		out = append(out, listedArtifact{Info: in, URL: e.artifactPath(in.ID), View: e.viewPath(in.ID)})
	}
	return out
}

func (e *artifactsExtension) serveList(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_ = json.NewEncoder(w).Encode(listing{Artifacts: e.listed()})
}

func (e *artifactsExtension) serveArtifact(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	f, info, err := e.store.open(id)
	switch {
	case errors.Is(err, ErrInvalidID):
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	case err != nil:
		http.Error(w, "artifact not found", http.StatusNotFound)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Disposition", `attachment; filename="`+id+`.perfetto-trace"`)
	http.ServeContent(w, r, "", info.Modified, f)
}
