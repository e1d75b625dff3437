// Package composecheck checks docker/docker-compose.yml and its GPU override
// with compose-go, the loader Docker Compose itself uses. It is a module of
// its own so that compose-go's dependencies stay out of gstcapture's go.mod:
//
//	cd docker/composecheck && go test ./...
package composecheck

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
	}
	assert.Equal(t, []string{"8000"}, published)

	var config bool
	for _, v := range s.Volumes {
		if v.Target == "/etc/gstcapture/cameras.yaml" {
			config = true
			assert.Equal(t, filepath.Join(root, "configs", "cameras.yaml"), v.Source)
			assert.True(t, v.ReadOnly, "config mounted read-only")
		}
	}
	assert.True(t, config, "configs/cameras.yaml is mounted at /etc/gstcapture/cameras.yaml")

	require.Len(t, s.EnvFiles, 1)
	assert.Equal(t, filepath.Join(root, "docker", ".env"), s.EnvFiles[0].Path)
	assert.False(t, bool(s.EnvFiles[0].Required), "docker/.env is optional (git-ignored)")
	env := s.Environment
	if assert.NotNil(t, env["OTEL_EXPORTER_OTLP_ENDPOINT"]) {
		assert.Equal(t, "http://jaeger:4318", *env["OTEL_EXPORTER_OTLP_ENDPOINT"])
	}
	if assert.NotNil(t, env["GSTCAPTURE_REDIS__URL"]) {
		assert.Equal(t, "redis://redis:6379/0", *env["GSTCAPTURE_REDIS__URL"])
	}
	for k, v := range env {
		assert.NotContains(t, k, "PASSWORD", "passwords come from docker/.env, not the compose file (%s=%v)", k, v)
	}
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
