// Package composecheck checks docker/docker-compose.yml and its GPU override
// with compose-go, the loader Docker Compose itself uses. It is a module of
// its own so that compose-go's dependencies stay out of gstcapture's go.mod:
//
//	cd docker/composecheck && go test ./...
package composecheck

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

const (
	baseFile = "../docker-compose.yml"
	gpuFile  = "../docker-compose.gpu.yml"
)

// load parses files as `docker compose -f ... config` would, with an empty
// environment and without reading env files, so that what the files say is
// what is checked (a developer's docker/.env does not change the result).
func load(t *testing.T, files ...string) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions(files,
		cli.WithWorkingDirectory(".."),
		cli.WithEnv([]string{}),
		cli.WithoutEnvironmentResolution,
		cli.WithResolvedPaths(true),
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
	)
	require.NoError(t, err)
	p, err := opts.LoadProject(context.Background())
	require.NoError(t, err, "compose files %v do not load", files)
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	require.NoError(t, err)
	return s
}

func TestBaseParses(t *testing.T) {
	p := load(t, baseFile)
	for _, name := range []string{"gstcapture", "redis", "prometheus", "grafana", "jaeger"} {
		s := service(t, p, name)
		assert.Equal(t, "unless-stopped", s.Restart, "%s: restart", name)
		if assert.NotNil(t, s.HealthCheck, "%s: healthcheck", name) {
			assert.NotEmpty(t, s.HealthCheck.Test, "%s: healthcheck test", name)
		}
		if assert.NotNil(t, s.Deploy, "%s: deploy", name) && assert.NotNil(t, s.Deploy.Resources.Limits, "%s: limits", name) {
			assert.Positive(t, float64(s.Deploy.Resources.Limits.NanoCPUs), "%s: cpu limit", name)
			assert.Positive(t, int64(s.Deploy.Resources.Limits.MemoryBytes), "%s: memory limit", name)
		}
	}
}

func TestGstcaptureService(t *testing.T) {
	p := load(t, baseFile)
	s := service(t, p, "gstcapture")

	require.NotNil(t, s.Build)
	assert.Equal(t, "docker/Dockerfile", s.Build.Dockerfile)
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	assert.Equal(t, root, s.Build.Context, "build context is the repository root")
	assert.FileExists(t, filepath.Join(s.Build.Context, s.Build.Dockerfile))

	assert.Equal(t, types.HealthCheckTest{"CMD", "gstcapture", "healthcheck"}, s.HealthCheck.Test)
	assert.Equal(t, "unless-stopped", s.Restart)

	var published []string
	for _, port := range s.Ports {
		published = append(published, port.Published)
		assert.EqualValues(t, 8000, port.Target)
		assert.Equal(t, "127.0.0.1", port.HostIP, "gstcapture is published on loopback only")
	}
	// A range: each of two replicas (--scale gstcapture=2) gets one.
	assert.Equal(t, []string{"8000-8001"}, published)

	// The directory is mounted, so that an edit saved by renaming over the
	// file reaches the container and its live reload (a bind mount of the
	// file keeps showing the old inode).
	var config bool
	for _, v := range s.Volumes {
		if v.Target == "/etc/gstcapture" {
			config = true
			assert.Equal(t, filepath.Join(root, "configs"), v.Source)
			assert.True(t, v.ReadOnly, "config mounted read-only")
		}
		assert.NotEqual(t, "/etc/gstcapture/cameras.yaml", v.Target, "the config file's directory is mounted, not the file")
	}
	assert.True(t, config, "configs/ is mounted at /etc/gstcapture, the directory of the image's --config /etc/gstcapture/cameras.yaml")

	require.Len(t, s.EnvFiles, 1)
	assert.Equal(t, filepath.Join(root, "docker", ".env"), s.EnvFiles[0].Path)
	assert.False(t, bool(s.EnvFiles[0].Required), "docker/.env is optional (git-ignored)")
	env := s.Environment
	if assert.NotNil(t, env["OTEL_EXPORTER_OTLP_ENDPOINT"]) {
		assert.Equal(t, "http://jaeger:4318", *env["OTEL_EXPORTER_OTLP_ENDPOINT"])
	}
	// The Redis URL carries the gstcapture user's password, so it comes
	// from docker/.env alone: set here, it would win over the env file.
	assert.NotContains(t, env, "GSTCAPTURE_REDIS__URL", "the Redis URL comes from docker/.env")
	for k, v := range env {
		assert.NotContains(t, k, "PASSWORD", "passwords come from docker/.env, not the compose file (%s=%v)", k, v)
	}
	example, err := os.ReadFile(filepath.Join(root, "docker", ".env.example"))
	require.NoError(t, err)
	assert.Regexp(t, `(?m)^#? ?GSTCAPTURE_REDIS__URL=redis://gstcapture:[^@\s]+@redis:6379/0$`, string(example),
		"docker/.env.example shows the Redis URL with the gstcapture user")
}

func TestRedisPolicy(t *testing.T) {
	s := service(t, load(t, baseFile), "redis")
	assert.Subset(t, []string(s.Command), []string{"--maxmemory-policy", "noeviction"})
	assert.Subset(t, []string(s.Command), []string{"--maxmemory", "1536mb"})
}

// Every bind mount's source must exist: Docker would otherwise create an
// empty directory in its place (or fail, for a file).
func TestBindSourcesExist(t *testing.T) {
	p := load(t, baseFile, gpuFile)
	for _, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			_, err := os.Stat(v.Source)
			assert.NoError(t, err, "service %s: bind source of %s", s.Name, v.Target)
		}
	}
}

func TestGPUOverride(t *testing.T) {
	p := load(t, baseFile, gpuFile)
	s := service(t, p, "gstcapture")
	require.NotNil(t, s.Deploy)
	require.NotNil(t, s.Deploy.Resources.Reservations, "GPU reservation")
	devs := s.Deploy.Resources.Reservations.Devices
	require.Len(t, devs, 1)
	assert.Equal(t, "nvidia", devs[0].Driver)
	assert.ElementsMatch(t, []string{"gpu", "video"}, devs[0].Capabilities)
	assert.EqualValues(t, -1, devs[0].Count, "count: all")

	// The merge keeps what the base file says.
	assert.NotNil(t, s.Deploy.Resources.Limits, "limits survive the merge")
	assert.NotNil(t, s.HealthCheck)
	assert.Equal(t, "unless-stopped", s.Restart)
	if assert.NotNil(t, s.Environment["GSTCAPTURE_DEFAULTS__DECODER"]) {
		assert.Equal(t, "gpu", *s.Environment["GSTCAPTURE_DEFAULTS__DECODER"])
	}
	if assert.NotNil(t, s.Environment["OTEL_EXPORTER_OTLP_ENDPOINT"]) {
		assert.Equal(t, "http://jaeger:4318", *s.Environment["OTEL_EXPORTER_OTLP_ENDPOINT"])
	}

	// Only gstcapture asks for the GPU.
	for _, other := range p.Services {
		if other.Name != "gstcapture" && other.Deploy != nil && other.Deploy.Resources.Reservations != nil {
			assert.Empty(t, other.Deploy.Resources.Reservations.Devices, "%s reserves a device", other.Name)
		}
	}
}

// services are the compose stack's services; each test below covers all of
// them, so a service added later has to be thought through.
var services = []string{"gstcapture", "redis", "prometheus", "grafana", "jaeger"}

// Every container drops all capabilities, cannot gain privileges (setuid
// binaries, file capabilities) and has a bound on processes and threads.
func TestHardening(t *testing.T) {
	pids := map[string]int64{
		// ~10 threads per camera plus GStreamer's and Go's pools.
		"gstcapture": 1024,
		"redis":      64,
		"prometheus": 256,
		"grafana":    256,
		"jaeger":     256,
	}
	for _, files := range [][]string{{baseFile}, {baseFile, gpuFile}} {
		p := load(t, files...)
		require.ElementsMatch(t, services, p.ServiceNames(), "%v", files)
		for _, name := range services {
			s := service(t, p, name)
			assert.Equal(t, []string{"ALL"}, s.CapDrop, "%v %s: cap_drop", files, name)
			assert.Empty(t, s.CapAdd, "%v %s: cap_add", files, name)
			assert.False(t, s.Privileged, "%v %s: privileged", files, name)
			assert.Contains(t, s.SecurityOpt, "no-new-privileges:true", "%v %s: security_opt", files, name)
			assert.NotContains(t, []string{"0", "root", "0:0", "root:root"}, s.User, "%v %s: user", files, name)
			if assert.NotNil(t, s.Deploy, "%v %s: deploy", files, name) && assert.NotNil(t, s.Deploy.Resources.Limits, "%v %s: limits", files, name) {
				assert.Equal(t, pids[name], s.Deploy.Resources.Limits.Pids, "%v %s: pids limit", files, name)
			}
		}
	}
}

// Nothing is published on all interfaces: the UIs and Prometheus have no
// authentication of their own, and gstcapture's tokens travel in clear.
// Redis is not published at all.
func TestPublishedPorts(t *testing.T) {
	want := map[string][]string{
		"gstcapture": {"127.0.0.1:8000-8001->8000"},
		"prometheus": {"127.0.0.1:9090->9090"},
		"grafana":    {"127.0.0.1:3000->3000"},
		"jaeger":     {"127.0.0.1:16686->16686"},
	}
	for _, files := range [][]string{{baseFile}, {baseFile, gpuFile}} {
		p := load(t, files...)
		got := map[string][]string{}
		var allInterfaces []string
		for _, name := range services {
			for _, port := range service(t, p, name).Ports {
				got[name] = append(got[name], fmt.Sprintf("%s:%s->%d", port.HostIP, port.Published, port.Target))
				if ip := net.ParseIP(port.HostIP); ip == nil || ip.IsUnspecified() {
					allInterfaces = append(allInterfaces, name)
				}
			}
		}
		assert.Equal(t, want, got, "%v: published ports", files)
		assert.Empty(t, allInterfaces, "%v: services published on every interface", files)
	}
}

// Redis is on backend only, an internal network that gstcapture shares
// with it; the monitoring services are not on backend.
func TestNetworks(t *testing.T) {
	want := map[string][]string{
		"gstcapture": {"backend", "monitoring"},
		"redis":      {"backend"},
		"prometheus": {"monitoring"},
		"grafana":    {"monitoring"},
		"jaeger":     {"monitoring"},
	}
	for _, files := range [][]string{{baseFile}, {baseFile, gpuFile}} {
		p := load(t, files...)
		for _, name := range services {
			var nets []string
			for n := range service(t, p, name).Networks {
				nets = append(nets, n)
			}
			assert.ElementsMatch(t, want[name], nets, "%v %s: networks", files, name)
		}
		if assert.Contains(t, p.Networks, "backend") {
			assert.True(t, p.Networks["backend"].Internal, "%v: backend is internal (no route out, no published ports)", files)
		}
	}
}

// Each secret reaches the one service that needs it: docker/.env (camera
// and Redis passwords) gstcapture only, the Redis password Redis only,
// Grafana's admin password Grafana only.
func TestSecretsPerService(t *testing.T) {
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	p := load(t, baseFile)
	want := map[string][]string{
		"redis":   {"redis_password"},
		"grafana": {"grafana_admin_password"},
	}
	for _, name := range services {
		s := service(t, p, name)
		var got []string
		for _, sec := range s.Secrets {
			got = append(got, sec.Source)
		}
		assert.ElementsMatch(t, want[name], got, "%s: secrets", name)
		if name != "gstcapture" {
			assert.Empty(t, s.EnvFiles, "%s reads an env file (docker/.env is gstcapture's)", name)
		}
	}
	for name, file := range map[string]string{
		"redis_password":         filepath.Join(root, "docker", "secrets", "redis_password"),
		"grafana_admin_password": filepath.Join(root, "docker", "secrets", "grafana_admin_password"),
	} {
		if assert.Contains(t, p.Secrets, name) {
			assert.Equal(t, file, p.Secrets[name].File, "secret %s", name)
		}
	}
}

// Anyone who reaches the lifecycle API can stop Prometheus (POST /-/quit).
func TestPrometheusNoLifecycle(t *testing.T) {
	s := service(t, load(t, baseFile), "prometheus")
	require.NotEmpty(t, s.Command)
	for _, arg := range s.Command {
		assert.NotContains(t, arg, "--web.enable-lifecycle")
		assert.NotContains(t, arg, "--web.enable-admin-api")
	}
}

// Grafana's admin password comes from a secret file, and nobody gets in
// without an account.
func TestGrafanaAdminPassword(t *testing.T) {
	s := service(t, load(t, baseFile), "grafana")
	env := s.Environment
	if assert.NotNil(t, env["GF_SECURITY_ADMIN_PASSWORD__FILE"]) {
		assert.Equal(t, secretPath(t, s, "grafana_admin_password"), *env["GF_SECURITY_ADMIN_PASSWORD__FILE"])
	}
	assert.NotContains(t, env, "GF_SECURITY_ADMIN_PASSWORD", "the password itself is not in the compose file")
	for k, want := range map[string]string{"GF_USERS_ALLOW_SIGN_UP": "false", "GF_AUTH_ANONYMOUS_ENABLED": "false"} {
		if assert.NotNil(t, env[k], k) {
			assert.Equal(t, want, *env[k], k)
		}
	}
	assert.Empty(t, s.EnvFiles, "grafana does not read docker/.env")
}

// secretPath is where service s finds its secret name.
func secretPath(t *testing.T, s types.ServiceConfig, name string) string {
	t.Helper()
	for _, sec := range s.Secrets {
		if sec.Source == name {
			if sec.Target == "" {
				return "/run/secrets/" + name
			}
			if filepath.IsAbs(sec.Target) {
				return sec.Target
			}
			return "/run/secrets/" + sec.Target
		}
	}
	t.Fatalf("service %s has no secret %s", s.Name, name)
	return ""
}

// bindTarget is where service s mounts the repository file rel.
func bindTarget(t *testing.T, s types.ServiceConfig, rel string) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && v.Source == filepath.Join(root, rel) {
			assert.True(t, v.ReadOnly, "%s: %s mounted read-only", s.Name, rel)
			return v.Target
		}
	}
	t.Fatalf("service %s does not mount %s", s.Name, rel)
	return ""
}

// Redis runs as its image's user with an ACL file that docker/redis/
// entrypoint.sh builds from docker/redis/gstcapture.acl and the password
// secret, on a tmpfs; its healthcheck logs in as gstcapture without the
// password on a command line.
func TestRedisAccess(t *testing.T) {
	s := service(t, load(t, baseFile), "redis")

	assert.Equal(t, "999:999", s.User, "the image's redis user: no gosu, no capability needed")
	assert.True(t, s.ReadOnly, "read-only root filesystem")

	entry := bindTarget(t, s, "docker/redis/entrypoint.sh")
	assert.Equal(t, types.ShellCommand{"sh", entry}, s.Entrypoint)
	script, err := os.ReadFile("../redis/entrypoint.sh")
	require.NoError(t, err)
	rules := bindTarget(t, s, "docker/redis/gstcapture.acl")
	assert.Contains(t, string(script), "${REDIS_ACL_RULES:-"+rules+"}",
		"the entrypoint reads the rules where compose mounts docker/redis/gstcapture.acl")
	assert.Contains(t, string(script), "${REDIS_PASSWORD_FILE:-"+secretPath(t, s, "redis_password")+"}",
		"the entrypoint reads the password where compose mounts the secret")

	// --aclfile PATH, on a tmpfs that only redis can read.
	var aclfile string
	for i, arg := range s.Command {
		if arg == "--aclfile" && i+1 < len(s.Command) {
			aclfile = s.Command[i+1]
		}
		assert.NotEqual(t, "--requirepass", arg, "users come from the ACL file")
	}
	require.NotEmpty(t, aclfile, "redis-server --aclfile PATH")
	assert.Equal(t, "redis-server", s.Command[0])
	var tmpfs string
	for _, m := range s.Tmpfs {
		if dir, opts, _ := strings.Cut(m, ":"); dir == filepath.Dir(aclfile) {
			tmpfs = opts
		}
	}
	assert.Contains(t, tmpfs, "uid=999", "the ACL file's directory is a tmpfs owned by redis")
	assert.Contains(t, tmpfs, "mode=0700")

	assert.Empty(t, s.Ports, "Redis is not published")
	require.NotNil(t, s.HealthCheck)
	test := s.HealthCheck.Test
	require.Len(t, test, 2)
	assert.Equal(t, "CMD-SHELL", test[0])
	assert.Contains(t, test[1], `REDISCLI_AUTH="$(tr -d '\r\n' < `+secretPath(t, s, "redis_password")+`)"`)
	assert.Contains(t, test[1], "redis-cli --user gstcapture ping")
	assert.Contains(t, test[1], "grep -qx PONG", "redis-cli exits 0 on NOAUTH: the reply is what counts")
	for _, flag := range []string{" -a ", "--pass", "AUTH "} {
		assert.NotContains(t, test[1], flag, "no password on redis-cli's command line")
	}
}

// runEntrypoint runs docker/redis/entrypoint.sh with the repository's rules
// file, or rules when not empty, and the password pw, up to the exec of
// /bin/true; it returns the ACL file's text, or the error output.
func runEntrypoint(t *testing.T, rules, pw string) (string, error) {
	t.Helper()
	for _, tool := range []string{"sh", "grep", "tr", "sha256sum", "true"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found: %v", tool, err)
		}
	}
	dir := t.TempDir()
	rulesFile, err := filepath.Abs("../redis/gstcapture.acl")
	require.NoError(t, err)
	if rules != "" {
		rulesFile = filepath.Join(dir, "rules.acl")
		require.NoError(t, os.WriteFile(rulesFile, []byte(rules), 0o600))
	}
	pwFile := filepath.Join(dir, "redis_password")
	require.NoError(t, os.WriteFile(pwFile, []byte(pw), 0o600))
	aclfile := filepath.Join(dir, "users.acl")
	cmd := exec.Command("sh", "../redis/entrypoint.sh", "true", "--port", "0", "--aclfile", aclfile)
	cmd.Env = append(os.Environ(), "REDIS_ACL_RULES="+rulesFile, "REDIS_PASSWORD_FILE="+pwFile)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), err
	}
	info, err := os.Stat(aclfile)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "the ACL file is for redis alone")
	b, err := os.ReadFile(aclfile)
	require.NoError(t, err)
	return string(b), nil
}

// The ACL file has default off and gstcapture with exactly the rules of
// docker/redis/gstcapture.acl and the password's SHA-256, never the
// password itself; a trailing newline (or CRLF) is not part of it.
func TestRedisEntrypointWritesACL(t *testing.T) {
	b, err := os.ReadFile("../redis/gstcapture.acl")
	require.NoError(t, err)
	var rules []string
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			rules = append(rules, line)
		}
	}
	require.Len(t, rules, 1, "docker/redis/gstcapture.acl: one rule line")

	const pw = "0123456789abcdef-compose-test"
	sum := sha256.Sum256([]byte(pw))
	want := "user default off resetpass resetkeys resetchannels -@all\n" +
		"user gstcapture " + strings.Join(strings.Fields(rules[0]), " ") + " #" + hex.EncodeToString(sum[:]) + "\n"
	for _, stored := range []string{pw, pw + "\n", pw + "\r\n"} {
		acl, err := runEntrypoint(t, "", stored)
		require.NoError(t, err, acl)
		assert.Equal(t, want, acl, "password file %q", stored)
		assert.NotContains(t, acl, pw)
	}
}

func TestRedisEntrypointRefuses(t *testing.T) {
	for _, tc := range []struct{ name, rules, pw, says string }{
		{"empty password", "", "\n", "is empty"},
		{"password in the rules", "on >secret ~frames:* +ping\n", "pw", "rules only"},
		{"hash in the rules", "on #0123 ~frames:* +ping\n", "pw", "rules only"},
		{"nopass in the rules", "on nopass ~frames:* +ping\n", "pw", "rules only"},
		{"two rule lines", "on ~frames:* +ping\non +info\n", "pw", "more than one"},
		{"no rule line", "# only a comment\n\n", "pw", "no rule line"},
	} {
		out, err := runEntrypoint(t, tc.rules, tc.pw)
		assert.Error(t, err, tc.name)
		assert.Contains(t, out, tc.says, tc.name)
	}
}

// hostPorts are the host ports a published port spec ("8000" or
// "8000-8001") may bind.
func hostPorts(t *testing.T, published string) []int {
	t.Helper()
	lo, hi, isRange := strings.Cut(published, "-")
	first, err := strconv.Atoi(lo)
	require.NoError(t, err, "published port %q", published)
	last := first
	if isRange {
		last, err = strconv.Atoi(hi)
		require.NoError(t, err, "published port %q", published)
	}
	var ports []int
	for p := first; p <= last; p++ {
		ports = append(ports, p)
	}
	return ports
}

// `docker compose up --scale gstcapture=2` runs a fleet of two: nothing
// in the files lets only one gstcapture container exist (container_name, a
// fixed host port, a fixed host name or replica id), both are replicas of
// a fleet, the configuration is a directory mount every replica watches,
// and Prometheus scrapes each replica.
func TestScaleTwoReplicas(t *testing.T) {
	const replicas = 2
	for _, files := range [][]string{{baseFile}, {baseFile, gpuFile}} {
		p, err := load(t, files...).WithServicesTransform(func(name string, s types.ServiceConfig) (types.ServiceConfig, error) {
			if name == "gstcapture" {
				s.SetScale(replicas)
			}
			return s, nil
		})
		require.NoError(t, err)
		s := service(t, p, "gstcapture")
		require.Equal(t, replicas, s.GetScale(), "%v", files)

		assert.Empty(t, s.ContainerName, "%v: container_name allows one container of the service", files)
		assert.Empty(t, s.Hostname, "%v: a fixed hostname would give every replica the same fleet.replica_id", files)
		assert.NotContains(t, s.Environment, "GSTCAPTURE_FLEET__REPLICA_ID", "%v: the replica id is each container's host name (its id)", files)
		if assert.NotNil(t, s.Environment["GSTCAPTURE_FLEET__ENABLED"], "%v: fleet enabled", files) {
			assert.Equal(t, "true", *s.Environment["GSTCAPTURE_FLEET__ENABLED"], "%v", files)
		}

		// Each replica needs a host port of its own for each published
		// port, and none may be taken by another service.
		taken := map[string]string{} // "ip:port" -> service
		for _, other := range p.Services {
			if other.Name == "gstcapture" {
				continue
			}
			for _, port := range other.Ports {
				for _, hp := range hostPorts(t, port.Published) {
					taken[fmt.Sprintf("%s:%d", port.HostIP, hp)] = other.Name
				}
			}
		}
		for _, port := range s.Ports {
			if port.Published == "" {
				continue // an ephemeral host port each
			}
			hps := hostPorts(t, port.Published)
			assert.GreaterOrEqual(t, len(hps), replicas, "%v: published %s->%d gives %d host port(s) for %d replicas", files, port.Published, port.Target, len(hps), replicas)
			for _, hp := range hps {
				key := fmt.Sprintf("%s:%d", port.HostIP, hp)
				assert.NotContains(t, taken, key, "%v: host port %s is also published by %s", files, key, taken[key])
			}
		}

		// The config is a directory, read-only, the same for every replica.
		var config bool
		for _, v := range s.Volumes {
			if v.Target != "/etc/gstcapture" {
				continue
			}
			config = true
			assert.Equal(t, types.VolumeTypeBind, v.Type, "%v", files)
			assert.True(t, v.ReadOnly, "%v: config read-only", files)
			info, err := os.Stat(v.Source)
			if assert.NoError(t, err, "%v", files) {
				assert.True(t, info.IsDir(), "%v: %s is mounted as a directory", files, v.Source)
			}
		}
		assert.True(t, config, "%v: /etc/gstcapture mounted", files)
		for _, v := range s.Volumes {
			assert.NotEqual(t, types.VolumeTypeVolume, v.Type, "%v: named volume %s would be shared by the replicas", files, v.Source)
		}
	}
}

// Prometheus scrapes every gstcapture replica: one target per address of
// the service name, on the port gstcapture listens on.
func TestPrometheusScrapesEachReplica(t *testing.T) {
	b, err := os.ReadFile("../../monitoring/prometheus.yml")
	require.NoError(t, err)
	var cfg struct {
		ScrapeConfigs []struct {
			JobName       string           `yaml:"job_name"`
			StaticConfigs []map[string]any `yaml:"static_configs"`
			DNSSDConfigs  []struct {
				Names []string `yaml:"names"`
				Type  string   `yaml:"type"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
		} `yaml:"scrape_configs"`
	}
	require.NoError(t, yaml.Unmarshal(b, &cfg))

	s := service(t, load(t, baseFile), "gstcapture")
	var target uint32
	for _, port := range s.Ports {
		target = port.Target
	}
	listen := s.Environment["GSTCAPTURE_HTTP__LISTEN"]
	require.NotNil(t, listen)
	assert.Equal(t, fmt.Sprintf(":%d", target), *listen, "the published port is http.listen's")

	var found bool
	for _, job := range cfg.ScrapeConfigs {
		if job.JobName != "gstcapture" {
			continue
		}
		found = true
		assert.Empty(t, job.StaticConfigs, "a static gstcapture:%d reaches one replica or another at random", target)
		require.Len(t, job.DNSSDConfigs, 1)
		sd := job.DNSSDConfigs[0]
		assert.Equal(t, []string{"gstcapture"}, sd.Names, "the compose service name")
		assert.Equal(t, "A", sd.Type, "Docker's DNS answers with one A record per container")
		assert.EqualValues(t, target, sd.Port)
	}
	assert.True(t, found, "monitoring/prometheus.yml: job gstcapture")
}
