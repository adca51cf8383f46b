package granularartifactsextension // import "github.com/granular-dev/granular/collector-plugin/granularartifactsextension"

import (
	_ "embed"
	"errors"
	"fmt"
	"html"
	"html/template"
	"net/http"
	"net/url"
	"strings"
)

// viewerPage is a copy of bridge/src/viewer/viewer.html (collector-plugin/
// sync-viewer.sh keeps it in step): one self-contained page that fetches
// nothing but the artifact named in its granular-artifact meta tag.
//
//go:embed viewer/viewer.html
var viewerPage string

// The placeholders of viewerPage; each is replaced by an HTML-escaped value.
const (
	placeholderArtifactURL = "{{GRANULAR_ARTIFACT_URL}}"
	placeholderTitle       = "{{GRANULAR_TITLE}}"
)

// pageCSP lets a page run only its own inline script and style and fetch
// only from the store's origin (the artifact); no frames, forms or plugins.
const pageCSP = "default-src 'none'; connect-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// renderViewer fills the viewer page for one artifact; both values are
// HTML-escaped (&, <, >, " and '), so neither can end the attribute or
// element it is placed in.
func renderViewer(artifactURL, title string) []byte {
	r := strings.NewReplacer(
		placeholderArtifactURL, html.EscapeString(artifactURL),
		placeholderTitle, html.EscapeString(title),
	)
	return []byte(r.Replace(viewerPage))
}

// setPageHeaders marks an HTML answer of the store: not cached (artifacts
// come and go with retention and eviction), not sniffed, under pageCSP.
func setPageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
}

// artifactPath is where the store serves artifact id, relative to the
// public URL's host: the public URL's path prefix, then /artifacts/<id>.
func (e *artifactsExtension) artifactPath(id string) string {
	return e.pathPrefix + "/artifacts/" + id
}

func (e *artifactsExtension) viewPath(id string) string {
	return e.pathPrefix + "/view/" + id
}

// serveView answers GET /view/{id}: the viewer page of a stored artifact.
func (e *artifactsExtension) serveView(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	switch _, err := e.store.info(id); {
	case errors.Is(err, ErrInvalidID):
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	case err != nil:
		http.Error(w, notHeld(id), http.StatusNotFound)
		return
	}
	setPageHeaders(w)
	_, _ = w.Write(renderViewer(e.artifactPath(id), "Granular · "+id))
}

func notHeld(id string) string {
	return fmt.Sprintf("artifact %q is not in this store: it expired (retention), was evicted (max_total_bytes), "+
		"or another store holds it (the host of its granular.artifact link)", id)
}

var indexPage = template.Must(template.New("index").Parse(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Granular artifacts</title>
<style>body{font:15px/1.4 system-ui,sans-serif;margin:2em}td{padding:.2em 1em .2em 0}</style></head>
<body>
<h1>Granular artifacts</h1>
{{if .}}<table>
<tr><th align="left">artifact</th><th align="left">stored</th><th align="right">bytes</th><th></th></tr>
{{range .}}<tr><td><a href="{{.View}}">{{.ID}}</a></td><td>{{.Modified.UTC.Format "2006-01-02 15:04:05Z"}}</td><td align="right">{{.Bytes}}</td><td><a href="{{.URL}}">download</a></td></tr>
{{end}}</table>{{else}}<p>No artifacts stored.</p>{{end}}
</body>
</html>
`))

// serveViewIndex answers GET /view/: with ?artifact=<artifact URL> (what
// the Jaeger link pattern passes, as Jaeger can only put a whole URL into a
// query parameter) a redirect to that artifact's viewer page here; without,
// an HTML list of the stored artifacts, newest first, linking their viewers.
func (e *artifactsExtension) serveViewIndex(w http.ResponseWriter, r *http.Request) {
	if q := r.URL.Query(); q.Has("artifact") {
		id, err := artifactIDOf(q.Get("artifact"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		http.Redirect(w, r, e.viewPath(id), http.StatusSeeOther)
		return
	}
	setPageHeaders(w)
	_ = indexPage.Execute(w, e.listed())
}

// artifactIDOf returns the id of an artifact URL, <base>/artifacts/<id>.
func artifactIDOf(link string) (string, error) {
	u, err := url.Parse(link)
	if err == nil {
		if rest, found := cutLast(u.Path, "/artifacts/"); found && ValidID(rest) {
			return rest, nil
		}
	}
	return "", fmt.Errorf("artifact=%q is not an artifact URL: want <store URL>/artifacts/<id>, the value of granular.artifact or granular.trace.artifact", link)
}

func cutLast(s, sep string) (string, bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return "", false
	}
	return s[i+len(sep):], true
}
