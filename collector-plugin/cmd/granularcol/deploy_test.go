package main

// Checks of the container layouts in deploy/compose and deploy/k8s, as far
// as they go without a Docker daemon or a cluster: every file parses, every
// file they mount, build or reference exists, names and ports they refer to
// are defined, the ConfigMaps carry the very bytes of deploy/collector/*.yaml
// (and of the Jaeger files), and each collector config validates with the
// environment its container gets.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/otelcol"
	"gopkg.in/yaml.v3"
)

var (
	repoDir    = filepath.Join("..", "..", "..")
	composeDir = filepath.Join(repoDir, "deploy", "compose")
	k8sDir     = filepath.Join(repoDir, "deploy", "k8s")
	// configSources are the files ConfigMap keys and mounts may carry.
	configSources = []string{
		filepath.Join(repoDir, "deploy", "collector"),
		filepath.Join(repoDir, "deploy", "compose"),
		filepath.Join(repoDir, "deploy", "jaeger"),
	}
	jaegerConfig = filepath.Join(composeDir, "jaeger.yaml")
	// viewerBase is where the Jaeger UI links the viewer (a static link
	// pattern cannot take a host from a span): the artifact store as the
	// layouts publish it to the browser (GRANULAR_ARTIFACTS_PUBLIC_URL).
	viewerBase     = "http://localhost:16700"
	jaegerUIConfig = filepath.Join(repoDir, "deploy", "jaeger", "ui-config.json")
)

// yamlDocs parses every document of a YAML file (merge keys resolved).
func yamlDocs(t *testing.T, file string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []map[string]any
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs
		}
		require.NoError(t, err, "%s does not parse as YAML", file)
		if doc != nil {
			docs = append(docs, doc)
		}
	}
}

func m(v any) map[string]any {
	out, _ := v.(map[string]any)
	return out
}

func list(v any) []any {
	out, _ := v.([]any)
	return out
}

func str(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

// configArg returns the file of `--config FILE` or `--config=FILE` in args.
func configArg(args []any) string {
	for i, a := range args {
		s := str(a)
		if s == "--config" && i+1 < len(args) {
			return str(args[i+1])
		}
		if v, ok := strings.CutPrefix(s, "--config="); ok {
			return v
		}
	}
	return ""
}

// sourceOf is the deploy file a mounted or ConfigMap'd file must equal.
func sourceOf(t *testing.T, name string) string {
	t.Helper()
	for _, dir := range configSources {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Errorf("%s is not a file of deploy/collector, deploy/compose or deploy/jaeger: do not fork configs", name)
	return ""
}

// validateCollector runs `granularcol validate` on file with env set.
func validateCollector(t *testing.T, file string, env map[string]string) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	cmd := otelcol.NewCommand(settings())
	cmd.SetArgs([]string{"validate", "--config", file})
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	require.NoError(t, cmd.Execute(), "granularcol validate --config %s with %v: %s", file, env, out.String())
}

// validateJaeger runs the Jaeger binary's validate on jaeger.yaml when the
// binary exists (deploy/jaeger/build.sh; tests/run.sh builds it first).
func validateJaeger(t *testing.T, file string) {
	t.Helper()
	bin := os.Getenv("GRANULAR_JAEGER_BIN")
	if bin == "" {
		bin = filepath.Join(repoDir, ".cache", "bin", "jaeger")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Logf("not validating %s: no Jaeger binary at %s (deploy/jaeger/build.sh builds it)", file, bin)
		return
	}
	out, err := exec.Command(bin, "validate", "--config", file).CombinedOutput()
	require.NoError(t, err, "jaeger validate --config %s: %s", file, out)
}

func TestJaegerUIConfigLinksArtifacts(t *testing.T) {
	data, err := os.ReadFile(jaegerUIConfig)
	require.NoError(t, err)
	var cfg struct {
		LinkPatterns []struct {
			Type, Key, URL, Text string
		} `json:"linkPatterns"`
	}
	require.NoError(t, json.Unmarshal(data, &cfg), "%s is not JSON", jaegerUIConfig)
	keys := map[string][]string{}
	for _, p := range cfg.LinkPatterns {
		assert.Equal(t, "tags", p.Type)
		assert.NotEmpty(t, p.Text)
		keys[p.Key] = append(keys[p.Key], p.URL)
	}
	for _, key := range []string{"granular.artifact", "granular.trace.artifact"} {
		// Jaeger URL-encodes #{...} values: a whole URL only works as a
		// query parameter, here the viewer redirect's and the Perfetto UI's.
		assert.Equal(t, []string{
			viewerBase + "/view/?artifact=#{" + key + "}",
			"https://ui.perfetto.dev/#!/?url=#{" + key + "}",
		}, keys[key], "link patterns for %s", key)
	}
	validateJaeger(t, jaegerConfig)
	jc := yamlDocs(t, jaegerConfig)[0]
	uiFile := str(m(m(m(jc["extensions"])["jaeger_query"])["ui"])["config_file"])
	assert.Equal(t, "/etc/jaeger/ui-config.json", uiFile, "the containers mount ui-config.json there")
}

// composeHostPort splits "name:port" or "scheme://name:port".
func composeHostPort(v string) (string, string) {
	if u, err := url.Parse(v); err == nil && u.Host != "" {
		v = u.Host
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return "", ""
	}
	return host, port
}

// endpointRefs lists host:port values an environment points at: the
// Collector's exporter and tier-2 list, and the OTLP endpoint of services.
func endpointRefs(env map[string]string) []string {
	var refs []string
	for _, k := range []string{"JAEGER_OTLP_GRPC", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
		if v := env[k]; v != "" {
			refs = append(refs, v)
		}
	}
	if v := env["GRANULAR_TIER2_ENDPOINTS"]; v != "" {
		var eps []string
		if err := yaml.Unmarshal([]byte(v), &eps); err == nil {
			refs = append(refs, eps...)
		} else {
			refs = append(refs, "unparsable GRANULAR_TIER2_ENDPOINTS "+v)
		}
	}
	return refs
}

func TestComposeLayouts(t *testing.T) {
	for _, name := range []string{"single.yaml", "scale-out.yaml"} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(composeDir, name)
			docs := yamlDocs(t, file)
			require.Len(t, docs, 1)
			services := m(docs[0]["services"])
			require.NotEmpty(t, services)
			namedVolumes := m(docs[0]["volumes"])
			hostPorts := map[string]string{}
			publicURLs := map[string]bool{}
			collectors := 0
			for svcName, v := range services {
				svc := m(v)
				require.NotNil(t, svc, "service %s", svcName)
				assert.True(t, svc["image"] != nil || svc["build"] != nil, "service %s has neither image nor build", svcName)
				if b := m(svc["build"]); b != nil {
					ctx := filepath.Join(composeDir, str(b["context"]))
					assert.DirExists(t, ctx, "service %s: build context", svcName)
					df := str(b["dockerfile"])
					if df == "" {
						df = "Dockerfile"
					}
					assert.FileExists(t, filepath.Join(ctx, df), "service %s: dockerfile", svcName)
				}
				for _, d := range list(svc["depends_on"]) {
					assert.Contains(t, services, str(d), "service %s depends on an unknown service", svcName)
				}
				mounts := map[string]string{} // container path -> host file
				for _, vol := range list(svc["volumes"]) {
					parts := strings.Split(str(vol), ":")
					require.GreaterOrEqual(t, len(parts), 2, "service %s: volume %q", svcName, vol)
					src, dst := parts[0], parts[1]
					if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
						host := filepath.Join(composeDir, src)
						assert.FileExists(t, host, "service %s mounts a missing file", svcName)
						mounts[dst] = host
						if sourceOf(t, filepath.Base(host)) != "" {
							assert.Equal(t, filepath.Clean(sourceOf(t, filepath.Base(host))), filepath.Clean(host))
						}
					} else {
						assert.Contains(t, namedVolumes, src, "service %s: volume %s is not declared", svcName, src)
					}
				}
				for _, p := range list(svc["ports"]) {
					spec := str(p)
					published := spec[:strings.LastIndex(spec, ":")]
					assert.True(t, strings.HasPrefix(published, "127.0.0.1:"), "service %s publishes %s beyond the host's loopback", svcName, spec)
					prev, dup := hostPorts[published]
					assert.False(t, dup, "host port %s published by %s and %s", published, prev, svcName)
					hostPorts[published] = svcName
				}
				env := map[string]string{}
				for k, v := range m(svc["environment"]) {
					env[k] = str(v)
				}
				if u := env["GRANULAR_ARTIFACTS_PUBLIC_URL"]; u != "" {
					publicURLs[u] = true
				}
				for _, ref := range endpointRefs(env) {
					host, _ := composeHostPort(ref)
					assert.Contains(t, services, host, "service %s points at %q, not a service of %s", svcName, ref, name)
				}
				cfg := configArg(list(svc["command"]))
				if cfg == "" {
					continue
				}
				host, ok := mounts[cfg]
				require.True(t, ok, "service %s: --config %s is not a mounted file", svcName, cfg)
				if strings.Contains(filepath.ToSlash(host), "deploy/collector/") {
					collectors++
					validateCollector(t, host, env)
				} else {
					assert.Equal(t, filepath.Clean(jaegerConfig), filepath.Clean(host))
					assert.Equal(t, filepath.Clean(jaegerUIConfig), filepath.Clean(mounts["/etc/jaeger/ui-config.json"]), "service %s: ui-config.json not mounted", svcName)
				}
			}
			assert.Positive(t, collectors, "no granularcol service")
			assert.True(t, publicURLs[viewerBase], "the Jaeger viewer links name %s, which no artifact store of %s publishes: %v", viewerBase, name, publicURLs)
		})
	}
}

// k8sLayout gathers the objects of a kustomization and the ones it includes.
func k8sLayout(t *testing.T, dir string, seen map[string]bool) []map[string]any {
	t.Helper()
	kfile := filepath.Join(dir, "kustomization.yaml")
	require.FileExists(t, kfile)
	k := yamlDocs(t, kfile)[0]
	assert.Equal(t, "Kustomization", k["kind"], kfile)
	var objs []map[string]any
	for _, r := range list(k["resources"]) {
		p := filepath.Join(dir, str(r))
		if seen[p] {
			continue
		}
		seen[p] = true
		st, err := os.Stat(p)
		require.NoError(t, err, "%s lists a missing resource", kfile)
		if st.IsDir() {
			objs = append(objs, k8sLayout(t, p, seen)...)
			continue
		}
		for _, doc := range yamlDocs(t, p) {
			doc["__file"] = p
			objs = append(objs, doc)
		}
	}
	return objs
}

func TestKubernetesLayouts(t *testing.T) {
	// Every manifest file belongs to some kustomization.
	listed := map[string]bool{}
	for _, layout := range []string{"single", "scale-out"} {
		k8sLayout(t, filepath.Join(k8sDir, layout), listed)
	}
	manifests, err := filepath.Glob(filepath.Join(k8sDir, "*", "*.yaml"))
	require.NoError(t, err)
	for _, f := range manifests {
		if filepath.Base(f) != "kustomization.yaml" {
			assert.True(t, listed[f], "%s is in no layout's kustomization", f)
		}
	}

	for _, layout := range []string{"single", "scale-out"} {
		t.Run(layout, func(t *testing.T) {
			objs := indexK8sObjects(t, k8sLayout(t, filepath.Join(k8sDir, layout), map[string]bool{}))
			objs.checkConfigMapsCarryDeployFiles(t)
			pods := objs.checkDeployments(t)
			objs.checkServicesSelect(t, pods)
		})
	}
}

// k8sObjects are a layout's objects by kind, then name.
type k8sObjects map[string]map[string]map[string]any

func indexK8sObjects(t *testing.T, objs []map[string]any) k8sObjects {
	t.Helper()
	byKind := k8sObjects{}
	for _, o := range objs {
		kind, name := str(o["kind"]), str(m(o["metadata"])["name"])
		require.NotEmpty(t, str(o["apiVersion"]), "%s: object without apiVersion", o["__file"])
		require.NotEmpty(t, kind, "%s: object without kind", o["__file"])
		require.NotEmpty(t, name, "%s: %s without a name", o["__file"], kind)
		if byKind[kind] == nil {
			byKind[kind] = map[string]map[string]any{}
		}
		_, dup := byKind[kind][name]
		require.False(t, dup, "two %s named %s", kind, name)
		byKind[kind][name] = o
	}
	return byKind
}

// checkConfigMapsCarryDeployFiles: ConfigMaps carry deploy files byte for byte.
func (objs k8sObjects) checkConfigMapsCarryDeployFiles(t *testing.T) {
	t.Helper()
	for name, cm := range objs["ConfigMap"] {
		for key, v := range m(cm["data"]) {
			src := sourceOf(t, key)
			if src == "" {
				continue
			}
			want, err := os.ReadFile(src)
			require.NoError(t, err)
			assert.Equal(t, string(want), str(v), "ConfigMap %s key %s differs from %s: run deploy/k8s/generate.sh", name, key, src)
		}
	}
}

// k8sPods are what the Deployments' pods offer Services: their labels and
// their ports (by name and number), by Deployment.
type k8sPods struct {
	labels map[string]map[string]any
	ports  map[string]map[string]bool
}

// checkDeployments checks labels, mounts, ConfigMap keys and the
// validation of each container's config, and returns the pods.
func (objs k8sObjects) checkDeployments(t *testing.T) k8sPods {
	t.Helper()
	pods := k8sPods{labels: map[string]map[string]any{}, ports: map[string]map[string]bool{}}
	collectors := 0
	for name, d := range objs["Deployment"] {
		spec := m(d["spec"])
		tmpl := m(spec["template"])
		labels := m(m(tmpl["metadata"])["labels"])
		for k, v := range m(m(spec["selector"])["matchLabels"]) {
			assert.Equal(t, v, labels[k], "Deployment %s: selector does not match its pods", name)
		}
		pods.labels[name] = labels
		pods.ports[name] = map[string]bool{}
		pod := m(tmpl["spec"])
		volumes := map[string]map[string]any{}
		for _, v := range list(pod["volumes"]) {
			volumes[str(m(v)["name"])] = m(v)
		}
		for _, c := range list(pod["containers"]) {
			for _, p := range list(m(c)["ports"]) {
				pods.ports[name][str(m(p)["name"])] = true
				pods.ports[name][str(m(p)["containerPort"])] = true
			}
			if objs.checkContainer(t, name, m(c), volumes) {
				collectors++
			}
		}
	}
	assert.Positive(t, collectors, "no granularcol Deployment")
	return pods
}

// checkContainer checks a container of Deployment name: its ConfigMap
// mounts, the Services its environment points at, and its --config, which
// it validates. It reports whether the container is a granularcol.
func (objs k8sObjects) checkContainer(t *testing.T, name string, c map[string]any, volumes map[string]map[string]any) bool {
	t.Helper()
	files := map[string]string{} // path in the container -> ConfigMap key
	var cmName string
	for _, vm := range list(c["volumeMounts"]) {
		vm := m(vm)
		vol, ok := volumes[str(vm["name"])]
		require.True(t, ok, "Deployment %s mounts undefined volume %s", name, vm["name"])
		cmRef := m(vol["configMap"])
		if cmRef == nil {
			continue
		}
		cmName = str(cmRef["name"])
		cm, ok := objs["ConfigMap"][cmName]
		require.True(t, ok, "Deployment %s mounts ConfigMap %s, not in the layout", name, cmName)
		for _, it := range list(cmRef["items"]) {
			key := str(m(it)["key"])
			assert.Contains(t, m(cm["data"]), key, "Deployment %s: ConfigMap %s has no key %s", name, cmName, key)
			files[path.Join(str(vm["mountPath"]), str(m(it)["path"]))] = key
		}
	}
	env := map[string]string{}
	for _, e := range list(c["env"]) {
		env[str(m(e)["name"])] = str(m(e)["value"])
	}
	for _, ref := range endpointRefs(env) {
		host, port := composeHostPort(ref)
		svc, ok := objs["Service"][host]
		if !assert.True(t, ok, "Deployment %s points at %q, not a Service of the layout", name, ref) {
			continue
		}
		found := false
		for _, p := range list(m(svc["spec"])["ports"]) {
			found = found || str(m(p)["port"]) == port
		}
		assert.True(t, found, "Deployment %s: Service %s has no port %s", name, host, port)
	}
	cfg := configArg(list(c["args"]))
	if cfg == "" {
		return false
	}
	key, ok := files[cfg]
	require.True(t, ok, "Deployment %s: --config %s is not a mounted ConfigMap key", name, cfg)
	content := str(m(objs["ConfigMap"][cmName]["data"])[key])
	tmp := filepath.Join(t.TempDir(), key)
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o600))
	if key == filepath.Base(jaegerConfig) {
		validateJaeger(t, tmp)
		assert.Equal(t, "ui-config.json", files["/etc/jaeger/ui-config.json"], "Deployment %s: ui-config.json not mounted", name)
		return false
	}
	validateCollector(t, tmp, env)
	return true
}

// checkServicesSelect: Services select a Deployment's pods and name its ports.
func (objs k8sObjects) checkServicesSelect(t *testing.T, pods k8sPods) {
	t.Helper()
	for name, s := range objs["Service"] {
		sel := m(m(s["spec"])["selector"])
		require.NotEmpty(t, sel, "Service %s selects nothing", name)
		var target string
		for dep, labels := range pods.labels {
			match := true
			for k, v := range sel {
				match = match && labels[k] == v
			}
			if match {
				target = dep
			}
		}
		require.NotEmpty(t, target, "Service %s selects no Deployment's pods", name)
		for _, p := range list(m(s["spec"])["ports"]) {
			tp := str(m(p)["targetPort"])
			assert.True(t, tp == "" || pods.ports[target][tp], "Service %s: Deployment %s has no port %s", name, target, tp)
		}
	}
}

// TestK8sGeneratedFilesAreListed makes sure generate.sh writes every
// configmap.yaml the layouts use (and nothing else writes them).
func TestK8sGeneratedFilesAreListed(t *testing.T) {
	script, err := os.ReadFile(filepath.Join(k8sDir, "generate.sh"))
	require.NoError(t, err)
	files, err := filepath.Glob(filepath.Join(k8sDir, "*", "configmap.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	var missing []string
	for _, f := range files {
		rel := filepath.Base(filepath.Dir(f)) + "/configmap.yaml"
		if !strings.Contains(string(script), `"$here/`+rel+`"`) {
			missing = append(missing, rel)
		}
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		assert.True(t, strings.HasPrefix(string(data), "# Generated by deploy/k8s/generate.sh"), "%s was not generated", f)
	}
	sort.Strings(missing)
	assert.Empty(t, missing, "configmap.yaml files generate.sh does not write")
}
