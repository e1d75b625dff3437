package check

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	manifestDir = ".."
	dockerFile  = "../../../docker/Dockerfile"
	repoRoot    = "../../.."
)

func load(t *testing.T, files map[string][]byte) (*manifests, []string) {
	t.Helper()
	df, err := readDockerfile(dockerFile)
	require.NoError(t, err)
	require.NotEmpty(t, df.user, "docker/Dockerfile: USER")
	require.NotEmpty(t, df.cmd, "docker/Dockerfile: CMD")
	require.NotEmpty(t, df.registry, "docker/Dockerfile: ENV GST_REGISTRY")
	m, probs := decode(files)
	if len(probs) == 0 {
		probs = m.check(df)
	}
	return m, probs
}

func readManifests(t *testing.T) map[string][]byte {
	t.Helper()
	files, err := readDir(manifestDir)
	require.NoError(t, err)
	require.NotEmpty(t, files)
	return files
}

// Every document decodes strictly into its k8s.io/api type, and the
// manifests agree with each other, the ConfigMap's configuration and the
// Dockerfile (checks.go).
func TestManifests(t *testing.T) {
	m, probs := load(t, readManifests(t))
	assert.Empty(t, probs)
	assert.Len(t, m.secrets, 3)
	assert.NotNil(t, m.kust)
}

// Each check fails on the mistake it is there for: one edit of the real
// manifests at a time, and the problem it must cause.
func TestChecksCatch(t *testing.T) {
	for _, tc := range []struct {
		name, file, old, new, want string
	}{
		{"unknown field", "deployment.yaml", "terminationGracePeriodSeconds: 30", "terminationGracePeriodSecond: 30", `json: unknown field "terminationGracePeriodSecond"`},
		{"wrong type", "service.yaml", "port: 8000", "port: eight", "Service: error unmarshaling JSON"},
		{"unknown kind", "pdb.yaml", "kind: PodDisruptionBudget", "kind: PodDisruptionBudgets", `unknown kind "PodDisruptionBudgets"`},
		{"file not in kustomization", "kustomization.yaml", "  - pdb.yaml\n", "", "pdb.yaml is not in resources"},
		{"kustomization lists a missing file", "kustomization.yaml", "  - pdb.yaml\n", "  - pdb.yaml\n  - ingress.yaml\n", "resource ingress.yaml is not a file"},
		{"label", "service.yaml", "  labels:\n    app.kubernetes.io/name: gstcapture", "  labels:\n    app.kubernetes.io/name: capture", "Service gstcapture: label app.kubernetes.io/name"},
		{"secret type", "secrets.yaml", "type: Opaque\nstringData:\n  url:", "type: kubernetes.io/basic-auth\nstringData:\n  url:", "Secret gstcapture-redis: type"},
		{"containerPort", "deployment.yaml", "containerPort: 8000", "containerPort: 8080", "containerPort http is 8080, cameras.yaml http.listen says 8000"},
		{"http.listen", "configmap.yaml", `listen: ":8000"`, `listen: ":9000"`, "containerPort http is 8000, cameras.yaml http.listen says 9000"},
		{"listen set twice, differently", "deployment.yaml", "          env:\n", "          env:\n            - name: GSTCAPTURE_HTTP__LISTEN\n              value: \":9000\"\n", `GSTCAPTURE_HTTP__LISTEN=":9000" disagrees with cameras.yaml http.listen ":8000"`},
		{"probe port", "deployment.yaml", "path: /readyz\n              port: http", "path: /readyz\n              port: 8001", "readinessProbe port 8001 is 8001"},
		{"readiness path", "deployment.yaml", "path: /readyz", "path: /healthz", "readinessProbe path /healthz, want /readyz"},
		{"liveness path", "deployment.yaml", "livenessProbe:\n            httpGet:\n              path: /healthz", "livenessProbe:\n            httpGet:\n              path: /health", "livenessProbe path /health, want /healthz"},
		{"service targetPort", "service.yaml", "targetPort: http", "targetPort: 8080", "Service gstcapture: targetPort 8080 is 8080"},
		{"service type", "service.yaml", "type: ClusterIP", "type: NodePort", "type NodePort, want ClusterIP"},
		{"service selector", "service.yaml", "  selector:\n    app.kubernetes.io/name: gstcapture", "  selector:\n    app.kubernetes.io/name: capture", "Service gstcapture: selector map[app.kubernetes.io/name:capture] does not select"},
		{"pdb selector", "pdb.yaml", "matchLabels:\n      app.kubernetes.io/name: gstcapture", "matchLabels:\n      app.kubernetes.io/name: capture", "PodDisruptionBudget gstcapture: selector does not select"},
		{"pdb budget", "pdb.yaml", "maxUnavailable: 1", "maxUnavailable: 2", "want maxUnavailable 1"},
		{"tokens outside the secret", "configmap.yaml", "tokens_file: /run/secrets/gstcapture/api_tokens", "tokens_file: /etc/gstcapture-tokens/api_tokens", "/etc/gstcapture-tokens/api_tokens is not in a directory where a Secret volume is mounted"},
		{"tokens key", "configmap.yaml", "tokens_file: /run/secrets/gstcapture/api_tokens", "tokens_file: /run/secrets/gstcapture/tokens", "Secret gstcapture-api-tokens has no key tokens"},
		{"config subPath", "deployment.yaml", "mountPath: /etc/gstcapture\n", "mountPath: /etc/gstcapture/cameras.yaml\n              subPath: cameras.yaml\n", "is mounted with subPath at /etc/gstcapture/cameras.yaml"},
		{"config elsewhere", "deployment.yaml", `"--config", "/etc/gstcapture/cameras.yaml"`, `"--config", "/etc/gstcapture/config/cameras.yaml"`, "no ConfigMap of these manifests is mounted (as a directory, no subPath) at /etc/gstcapture/config"},
		{"config key", "configmap.yaml", "  cameras.yaml: |", "  config.yaml: |", "with the key cameras.yaml"},
		{"image CMD", "deployment.yaml", `          args: ["run", "--config", "/etc/gstcapture/cameras.yaml"]` + "\n", "", ""}, // the Dockerfile's CMD says the same
		{"not run", "deployment.yaml", `args: ["run", `, `args: ["validate", `, "want gstcapture run --config FILE"},
		{"replicas", "deployment.yaml", "replicas: 3", "replicas: 1", "replicas 1, want at least 2"},
		{"fleet off", "configmap.yaml", "enabled: true", "enabled: false", "cameras.yaml fleet.enabled is false, want true"},
		{"fleet off by env", "deployment.yaml", "          env:\n", "          env:\n            - name: GSTCAPTURE_FLEET__ENABLED\n              value: \"false\"\n", "env GSTCAPTURE_FLEET__ENABLED is false, want true"},
		{"replica id", "deployment.yaml", "fieldPath: metadata.name", "fieldPath: spec.nodeName", "GSTCAPTURE_FLEET__REPLICA_ID must come from the pod name"},
		{"grace", "deployment.yaml", "terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds: 7", "terminationGracePeriodSeconds 7s, want more than shutdown.timeout + redis.timeout (flush, then the leases' release) = 7s"},
		{"grace unknown", "configmap.yaml", "      timeout: 5s\n", "", "shutdown.timeout is not set"},
		{"camera password", "secrets.yaml", "PARKING2_PASSWORD: change-me", "PARKING_PASSWORD: change-me", "cameras[2] (parking-2) reads PARKING2_PASSWORD, which the Deployment does not set"},
		{"camera url variable", "configmap.yaml", "url: rtsp://admin@192.168.1.10", "url: rtsp://admin:${FRONT_PASSWORD}@192.168.1.10", "cameras[0] (entrance) reads FRONT_PASSWORD"},
		{"service links", "deployment.yaml", "enableServiceLinks: false", "enableServiceLinks: true", "enableServiceLinks must be false"},
		{"service token", "deployment.yaml", "automountServiceAccountToken: false", "automountServiceAccountToken: true", "automountServiceAccountToken must be false"},
		{"user", "deployment.yaml", "runAsUser: 10001", "runAsUser: 1000", "runAsUser 1000, want 10001"},
		{"non-root", "deployment.yaml", "runAsNonRoot: true", "runAsNonRoot: false", "runAsNonRoot must be true"},
		{"read-only root", "deployment.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", "readOnlyRootFilesystem must be true"},
		{"escalation", "deployment.yaml", "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true", "allowPrivilegeEscalation must be false"},
		{"capabilities", "deployment.yaml", "drop: [ALL]", "drop: [NET_RAW]", "capabilities must drop ALL"},
		{"seccomp", "deployment.yaml", "type: RuntimeDefault", "type: Unconfined", "seccompProfile must be RuntimeDefault"},
		{"registry cache", "deployment.yaml", "mountPath: /var/cache/gstcapture", "mountPath: /var/cache/other", "/var/cache/gstcapture is not an emptyDir mount"},
		{"memory limit", "deployment.yaml", "              memory: 2Gi\n              # NVIDIA", "              # NVIDIA", "no memory limit"},
		{"memory request", "deployment.yaml", "              memory: 2Gi\n            limits:", "              memory: 3Gi\n            limits:", "memory request must be set and at most the limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := readManifests(t)
			text := string(files[tc.file])
			require.Equal(t, 1, strings.Count(text, tc.old), "%s: %q must occur once", tc.file, tc.old)
			files[tc.file] = []byte(strings.Replace(text, tc.old, tc.new, 1))
			_, probs := load(t, files)
			if tc.want == "" {
				assert.Empty(t, probs)
				return
			}
			var found bool
			for _, p := range probs {
				found = found || strings.Contains(p, tc.want)
			}
			assert.True(t, found, "want a problem containing %q, got %q", tc.want, probs)
		})
	}
}

// gstcaptureBinary is bin/gstcapture when it is newer than every Go file
// of the service, else a fresh build; the test is skipped when gstcapture
// cannot be built here (no GStreamer development packages).
func gstcaptureBinary(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(repoRoot)
	require.NoError(t, err)
	if prebuilt := filepath.Join(root, "bin", "gstcapture"); fresh(t, root, prebuilt) {
		return prebuilt
	}
	out := filepath.Join(t.TempDir(), "gstcapture")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/gstcapture")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		if bytes.Contains(b, []byte("pkg-config")) || bytes.Contains(b, []byte("gstreamer")) {
			t.Skipf("gstcapture does not build here (GStreamer development packages missing?):\n%s", b)
		}
		t.Fatalf("go build ./cmd/gstcapture: %v\n%s", err, b)
	}
	return out
}

// fresh reports whether bin exists and is newer than every .go file under
// cmd/, internal/ and pipelines/.
func fresh(t *testing.T, root, bin string) bool {
	info, err := os.Stat(bin)
	if err != nil {
		return false
	}
	newer := false
	for _, dir := range []string{"cmd", "internal", "pipelines"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil || newer || d.IsDir() || !strings.HasSuffix(p, ".go") {
				return err
			}
			if fi, err := d.Info(); err == nil && fi.ModTime().After(info.ModTime()) {
				newer = true
			}
			return nil
		})
		require.NoError(t, err)
	}
	return !newer
}

// podEnv is the environment the Deployment gives the gstcapture container,
// with the Secrets' values from these manifests and podName for fieldRef.
func podEnv(t *testing.T, m *manifests, d *deployment, podName string) []string {
	t.Helper()
	var env []string
	for _, ef := range d.c.EnvFrom {
		require.NotNil(t, ef.SecretRef, "envFrom: only Secrets are handled here")
		s := m.secret(ef.SecretRef.Name)
		require.NotNil(t, s, "Secret %s", ef.SecretRef.Name)
		for _, k := range secretKeys(s) {
			v, _ := secretValue(s, k)
			env = append(env, ef.Prefix+k+"="+v)
		}
	}
	for _, e := range d.c.Env { // env wins over envFrom: later entries win
		v := e.Value
		switch {
		case e.ValueFrom == nil:
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			v = podName
		case e.ValueFrom.SecretKeyRef != nil:
			s := m.secret(e.ValueFrom.SecretKeyRef.Name)
			require.NotNil(t, s, "env %s: Secret %s", e.Name, e.ValueFrom.SecretKeyRef.Name)
			var ok bool
			v, ok = secretValue(s, e.ValueFrom.SecretKeyRef.Key)
			require.True(t, ok, "env %s: Secret %s has no key %s", e.Name, s.Name, e.ValueFrom.SecretKeyRef.Key)
		default:
			t.Fatalf("env %s: this test does not know its valueFrom", e.Name)
		}
		env = append(env, e.Name+"="+v)
	}
	return env
}

// validate runs gstcapture validate on the ConfigMap's configuration with
// the Deployment's environment, the tokens file replaced by tokens (the
// Secret is mounted elsewhere than here).
func validate(t *testing.T, tokens string) (string, error) {
	t.Helper()
	m, probs := load(t, readManifests(t))
	require.Empty(t, probs)
	var p problems
	d := m.deployment(&p, mustDockerfile(t))
	require.NotNil(t, d, p)
	bin := gstcaptureBinary(t)

	dir := t.TempDir()
	cfg := filepath.Join(dir, filepath.Base(d.configPath))
	require.NoError(t, os.WriteFile(cfg, []byte(configText(t, d)), 0o600))
	tokFile := filepath.Join(dir, "api_tokens")
	require.NoError(t, os.WriteFile(tokFile, []byte(tokens), 0o600))

	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	env = append(env, podEnv(t, m, d, "gstcapture-6d4f9c7b5-x7k2p")...)
	env = append(env, envName("http.auth.tokens_file")+"="+tokFile)
	cmd := exec.Command(bin, "validate", "--config", cfg)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if bytes.Contains(out, []byte("error while loading shared libraries")) {
		t.Skipf("%s cannot run here: %s", bin, out)
	}
	return string(out), err
}

func mustDockerfile(t *testing.T) dockerfile {
	t.Helper()
	df, err := readDockerfile(dockerFile)
	require.NoError(t, err)
	return df
}

func configText(t *testing.T, d *deployment) string {
	t.Helper()
	for key, text := range d.configMap.Data {
		if key == filepath.Base(d.configPath) {
			return text
		}
	}
	t.Fatalf("ConfigMap %s has no %s", d.configMap.Name, filepath.Base(d.configPath))
	return ""
}

// The ConfigMap's configuration passes gstcapture's own validation with
// the environment the Deployment sets (Redis URL, camera passwords, replica
// id from the pod name), and a tokens file of real length.
func TestConfigMapValidates(t *testing.T) {
	tok := func() string {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		return hex.EncodeToString(b)
	}
	out, err := validate(t, "read "+tok()+"\nadmin "+tok()+"\n")
	require.NoError(t, err, out)
	assert.Contains(t, out, "ok (3 cameras)")
}

// The Secret's placeholder tokens are refused, so pods started from the
// unedited secrets.yaml stop at start with a message instead of serving
// the API with guessable tokens.
func TestPlaceholderTokensRefused(t *testing.T) {
	m, probs := load(t, readManifests(t))
	require.Empty(t, probs)
	s := m.secret("gstcapture-api-tokens")
	require.NotNil(t, s)
	placeholder, ok := secretValue(s, "api_tokens")
	require.True(t, ok)
	out, err := validate(t, placeholder)
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "gstcapture validate accepted the placeholder tokens: %v\n%s", err, out)
	assert.Equal(t, 2, exit.ExitCode(), out)
	assert.Contains(t, out, "http.auth.tokens_file")
	assert.Contains(t, out, "token is 9 characters")
}

// The Secrets hold placeholders only: nothing that looks like a real
// password or token is committed.
func TestSecretsArePlaceholders(t *testing.T) {
	m, probs := load(t, readManifests(t))
	require.Empty(t, probs)
	for _, s := range m.secrets {
		assert.Empty(t, s.Data, "Secret %s: placeholders go in stringData", s.Name)
		for _, k := range secretKeys(s) {
			v, _ := secretValue(s, k)
			assert.Contains(t, v, "change-me", "Secret %s key %s: not a placeholder", s.Name, k)
		}
	}
}
