package membudget

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeTree writes files under a temporary root: name -> content.
func fakeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	return root
}

func TestContainerLimit(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		want  int64
		from  string
	}{
		{"v2 in a container (cgroup namespace)", map[string]string{
			"proc": "0::/\n", "cg/memory.max": "1610612736\n"}, 1610612736, "cg/memory.max"},
		{"v2 no limit", map[string]string{
			"proc": "0::/\n", "cg/memory.max": "max\n"}, 0, ""},
		{"v2 the smallest of the cgroup and its ancestors", map[string]string{
			"proc": "0::/kubepods/pod1/ctr\n", "cg/memory.max": "max\n",
			"cg/kubepods/memory.max": "8589934592\n", "cg/kubepods/pod1/memory.max": "1073741824\n",
			"cg/kubepods/pod1/ctr/memory.max": "max\n"}, 1 << 30, "cg/kubepods/pod1/memory.max"},
		{"v1", map[string]string{
			"proc": "12:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n",
			"cg/memory/docker/abc/memory.limit_in_bytes": "536870912\n"}, 512 << 20, "cg/memory/docker/abc/memory.limit_in_bytes"},
		{"v1 no limit is a huge number", map[string]string{
			"proc": "4:memory:/\n", "cg/memory/memory.limit_in_bytes": "9223372036854771712\n"}, 0, ""},
		{"no cgroup files", map[string]string{"proc": "0::/x\n"}, 0, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := fakeTree(t, tc.files)
			l, err := ContainerLimit(filepath.Join(root, "cg"), filepath.Join(root, "proc"))
			require.NoError(t, err)
			assert.Equal(t, tc.want, l.Bytes)
			if tc.from != "" {
				assert.Equal(t, filepath.Join(root, tc.from), l.Source)
			}
		})
	}

	l, err := ContainerLimit(t.TempDir(), filepath.Join(t.TempDir(), "missing"))
	require.NoError(t, err, "no /proc/self/cgroup (not Linux): no limit")
	assert.Zero(t, l.Bytes)

	root := fakeTree(t, map[string]string{"proc": "0::/\n", "cg/memory.max": "lots\n"})
	_, err = ContainerLimit(filepath.Join(root, "cg"), filepath.Join(root, "proc"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "memory.max: not a byte count: \"lots\"")
}

// This machine's own limit reads without error (whatever it is).
func TestContainerLimitHere(t *testing.T) {
	_, err := ContainerLimit("/sys/fs/cgroup", "/proc/self/cgroup")
	assert.NoError(t, err)
}

func TestPlan(t *testing.T) {
	compose := Limit{Bytes: 1536 << 20, Source: "/sys/fs/cgroup/memory.max"}
	s := Plan(0, compose, 8)
	assert.Equal(t, int64(1152<<20), s.Budget, "auto: 75% of the limit")
	assert.Equal(t, int64(288<<20), s.GoLimit, "a quarter for the Go heap")
	assert.Equal(t, int64(108<<20), s.PerCamera, "the rest over 8 cameras")
	assert.Contains(t, s.Source, "75% of /sys/fs/cgroup/memory.max")

	assert.Equal(t, Split{}, Plan(0, Limit{}, 8), "auto without a limit: no bound")
	assert.Equal(t, Split{}, Plan(-1, compose, 8), "none: no bound even in a container")

	s = Plan(64<<20, Limit{}, 4)
	assert.Equal(t, "memory.budget", s.Source)
	assert.Equal(t, int64(32<<20), s.GoLimit, "GOMEMLIMIT has a floor")
	assert.Equal(t, int64(8<<20), s.PerCamera)
}

func TestSizeRing(t *testing.T) {
	const hd = 1920 * 1080 * 3
	// Compose's 108 MiB per camera at 1080p: 10 before the ring, 2 in the
	// batch (16 MiB of 6.2 MB frames), 6 in the ring.
	r := SizeRing(108<<20, hd, 32, 2)
	assert.Equal(t, Ring{Bytes: 6 * hd, Frames: 6, Short: true}, r)

	r = SizeRing(1<<30, hd, 32, 2)
	assert.Equal(t, Ring{Bytes: 32 * hd, Frames: 32}, r, "room for ring_size: ring_size")

	r = SizeRing(8<<20, hd, 32, 2)
	assert.Equal(t, Ring{Bytes: hd, Frames: 1, Short: true}, r, "never below one frame")

	assert.Equal(t, Ring{Frames: 32}, SizeRing(0, hd, 32, 2), "no bound")
	assert.Equal(t, Ring{Frames: 32}, SizeRing(1<<20, 0, 32, 2), "size not known yet")
}

// For JPEG the frame count is SizeRing's, and the byte limit the ring's
// whole room in the share.
func TestSizeRingVarying(t *testing.T) {
	const jpeg = 100_000
	r := SizeRingVarying(54<<20, jpeg, 32, 16)
	assert.Equal(t, Ring{Bytes: 54<<20 - 26*jpeg, Frames: 32}, r, "room for ring_size, bytes to spare")
	r = SizeRingVarying(4<<20, jpeg, 32, 16)
	assert.Equal(t, Ring{Bytes: 4<<20 - 26*jpeg, Frames: 15, Short: true}, r)
	r = SizeRingVarying(1<<20, jpeg, 32, 16)
	assert.Equal(t, Ring{Bytes: jpeg, Frames: 1, Short: true}, r, "never below one frame")
	assert.Equal(t, Ring{Frames: 32}, SizeRingVarying(0, jpeg, 32, 16), "no bound")
}
