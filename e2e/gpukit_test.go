package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The limit docs/gpu-kit.md and scripts/gpu-kit.sh set on the tarball.
const gpuKitLimit = 60 << 20

// glibcLib is what the kit leaves to the host (scripts/gpu-kit.sh GLIBC_RE).
var glibcLib = regexp.MustCompile(`^(ld-linux-x86-64\.so\.2|libc\.so\.6|libm\.so\.6|libmvec\.so\.1|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|libresolv\.so\.2|libutil\.so\.1|libanl\.so\.1|libnsl\.so\.1|libthread_db\.so\.1|libc_malloc_debug\.so\.0|libnss_[a-z_]+\.so\.2)$`)

// TestGPUKit builds the GPU check kit (or finds it up to date), checks its
// size and contents, unpacks it elsewhere and, from the unpacked copy, in
// an environment pointing at the system's GStreamer, checks that every
// library resolves into the kit and runs gpu-check.sh --cpu-only: the CPU
// half must report every camera near its fps, the method's self-check and
// both fallback variants passing, and the GPU half skipped, saying why.
func TestGPUKit(t *testing.T) {
	root := repoRoot(t)
	binary(t, "gstcapture")
	binary(t, "camsim")

	t0 := time.Now()
	build := exec.Command("bash", filepath.Join(root, "scripts", "gpu-kit.sh"), "--no-build")
	build.Dir = root
	out, err := build.CombinedOutput()
	require.NoError(t, err, "scripts/gpu-kit.sh --no-build:\n%s", out)
	t.Logf("%s(%.1f s)", out, time.Since(t0).Seconds())

	tarball := filepath.Join(root, "bin", "gpu-kit.tar.gz")
	st, err := os.Stat(tarball)
	require.NoError(t, err)
	assert.LessOrEqual(t, st.Size(), int64(gpuKitLimit), "the kit is %.1f MiB, over 60 MiB", float64(st.Size())/(1<<20))

	dir := t.TempDir()
	files := untar(t, tarball, dir)
	kit := filepath.Join(dir, "gpu-kit")
	for _, want := range []string{"plugins-nvcodec/libgstnvcodec.so", "plugins/libgstlibav.so", "plugins/libgstx264.so",
		"bin/gstcapture", "bin/camsim", "bin/redis-server", "bin/gpucheck", "bin/gst-inspect-1.0", "libexec/gst-plugin-scanner",
		"clips/clip.h264", "clips/clip.h265", "run", "gpu-check.sh", "MANIFEST"} {
		assert.Contains(t, files, "gpu-kit/"+want, "the kit holds %s", want)
	}
	for _, f := range files {
		assert.False(t, glibcLib.MatchString(filepath.Base(f)), "the kit holds glibc's %s, which must come from the host", f)
		assert.NotRegexp(t, `(^|/)lib(cuda|nvcuvid|nvidia-)`, f, "the kit holds an NVIDIA driver library")
	}
	_, err = os.Stat(filepath.Join(kit, "plugins", "libgstnvcodec.so"))
	assert.True(t, errors.Is(err, os.ErrNotExist), "nvcodec is kept out of plugins/, so a run can leave it out")

	sysPlugins := strings.TrimSpace(run1(t, "pkg-config", "--variable=pluginsdir", "gstreamer-1.0"))
	// What the host could offer instead of the kit's: its GStreamer
	// plugins and its libraries first in the search path.
	env := []string{"PATH=/usr/bin:/bin", "HOME=" + dir, "TMPDIR=" + dir,
		"GST_PLUGIN_PATH=" + sysPlugins, "GST_PLUGIN_SYSTEM_PATH=" + sysPlugins,
		"LD_LIBRARY_PATH=" + filepath.Dir(sysPlugins)}

	t.Run("libraries come from the kit", func(t *testing.T) {
		var elfs []string
		require.NoError(t, filepath.WalkDir(kit, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if isDynamicELF(p) {
				elfs = append(elfs, p)
			}
			return nil
		}))
		require.Greater(t, len(elfs), 50)
		for _, f := range elfs {
			cmd := exec.Command(filepath.Join(kit, "run"), "ldd", f)
			cmd.Env = env
			res, err := cmd.CombinedOutput()
			require.NoError(t, err, "ldd %s: %s", f, res)
			for _, l := range strings.Split(string(res), "\n") {
				so, path, ok := strings.Cut(strings.TrimSpace(l), " => ")
				if !ok {
					continue
				}
				path, _, _ = strings.Cut(path, " (")
				assert.NotContains(t, path, "not found", "%s: %s", f, l)
				if !strings.HasPrefix(path, kit+"/") {
					assert.Regexp(t, glibcLib, so, "%s loads %s from %s, outside the kit", f, so, path)
				}
			}
		}
		// What the dynamic linker actually initialises, plugin scanner
		// (a child) included, while GStreamer scans a fresh registry.
		cmd := exec.Command(filepath.Join(kit, "run"), "gstcapture", "probe")
		cmd.Env = append(env, "LD_DEBUG=libs", "GPU_KIT_REGISTRY="+filepath.Join(dir, "ld-debug-registry.bin"))
		res, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", tail(string(res), 3000))
		// Each program's lines: ld.so's own init starts an image (the
		// wrapper's bash execs gstcapture in the same process), "initialize
		// program" names it, and later inits are its dlopens.
		progs := ldDebugInits(string(res))
		checked := 0
		for prog, libs := range progs {
			if !strings.HasPrefix(prog, kit+"/") {
				continue // the wrapper's own tools: env, bash, mkdir
			}
			checked++
			assert.Greater(t, len(libs), 5, "%s: LD_DEBUG=libs shows its libraries initialised", prog)
			for _, p := range libs {
				if !strings.HasPrefix(p, kit+"/") {
					assert.Regexp(t, glibcLib, filepath.Base(p), "%s initialised %s, from outside the kit", prog, p)
				}
			}
		}
		assert.Contains(t, progs, kit+"/bin/gstcapture")
		assert.Contains(t, progs, kit+"/libexec/gst-plugin-scanner", "GStreamer scanned the plugins in its scanner")
		assert.GreaterOrEqual(t, checked, 2)
		assert.Contains(t, string(res), kit+"/plugins/libgstlibav.so", "the scanner loaded the kit's libav plugin")
	})

	report := filepath.Join(dir, "report.txt")
	check := exec.Command(filepath.Join(kit, "gpu-check.sh"), "--cpu-only", "--cameras", "2", "--codecs", "h264",
		"--window", "8", "--warmup", "3", "--out", report)
	check.Env = env
	t0 = time.Now()
	printed, err := check.CombinedOutput()
	t.Logf("gpu-check.sh --cpu-only took %.1f s", time.Since(t0).Seconds())
	require.NoError(t, err, "gpu-check.sh failed:\n%s", printed)
	written, err := os.ReadFile(report)
	require.NoError(t, err)
	assert.Equal(t, string(written), string(printed), "the report is what was printed")

	results := parseResults(string(written))
	cams := results["camera"]
	require.Len(t, cams, 2, "one RESULT camera line per camera:\n%s", written)
	for _, c := range cams {
		fps, err := strconv.ParseFloat(c["fps"], 64)
		require.NoError(t, err, "camera %s: fps %q", c["id"], c["fps"])
		assert.InDelta(t, 10, fps, 1, "camera %s publishes at the configured 10 fps", c["id"])
		assert.Equal(t, "avdec_h264", c["element"], "camera %s", c["id"])
		assert.Equal(t, "cpu", c["decoder"])
		assert.Equal(t, "pass", c["status"])
	}
	require.Len(t, results["capture"], 1)
	capture := results["capture"][0]
	assert.Equal(t, "pass", capture["status"])
	cpu, err := strconv.ParseFloat(capture["cpu_per_camera_pct"], 64)
	require.NoError(t, err)
	assert.Greater(t, cpu, 0.5, "gstcapture's CPU was measured")

	falls := results["fallback"]
	require.Len(t, falls, 2, "two fallback variants:\n%s", written)
	for _, f := range falls {
		assert.Equal(t, "pass", f["status"], "fallback %s", f["variant"])
		assert.Equal(t, "avdec_h264", f["decoder"], "fallback %s", f["variant"])
		assert.Equal(t, "avdec_h264", f["probe_choice"], "fallback %s", f["variant"])
		assert.Equal(t, "yes", f["gpu_refused"], "fallback %s", f["variant"])
	}
	assert.ElementsMatch(t, []string{"no-gpu", "no-nvcodec"}, []string{falls[0]["variant"], falls[1]["variant"]})

	require.Len(t, results["selfcheck"], 1)
	self := results["selfcheck"][0]
	assert.Equal(t, "pass", self["status"])
	assert.Equal(t, "30", self["pairs"])
	assert.Equal(t, "0.0000", self["mad_max"], "two CPU decodes of the same clip are identical")
	adj, err := strconv.ParseFloat(self["adjacent_mad"], 64)
	require.NoError(t, err)
	assert.Greater(t, adj, 4.0, "frames one clip position apart differ by more than 4 x the tolerance")
	require.Len(t, results["correctness"], 1)
	assert.Equal(t, "skipped", results["correctness"][0]["status"])

	require.Len(t, results["decode"], 1)
	assert.Equal(t, "100", results["decode"][0]["frames"])
	require.Len(t, results["isolation"], 1)
	assert.Equal(t, "pass", results["isolation"][0]["status"])
	assert.Equal(t, "0", results["isolation"][0]["other"])
	require.Len(t, results["gpu"], 1)
	assert.Equal(t, "skipped", results["gpu"][0]["status"])
	assert.Equal(t, "--cpu-only was given", results["gpu"][0]["reason"])
	assert.Contains(t, string(written), "GPU half: SKIPPED: --cpu-only was given")
	require.Len(t, results["overall"], 1)
	assert.Equal(t, "pass", results["overall"][0]["status"])
	assert.NotContains(t, string(written), "FAIL:")
}

// ldDebugInits reads LD_DEBUG=libs output: for each program (as
// "initialize program" names it), the libraries whose init was called in
// it, dlopened ones included.
func ldDebugInits(out string) map[string][]string {
	type state struct {
		prog    string
		pending []string
	}
	byPid := map[string]*state{}
	progs := map[string][]string{}
	for _, l := range strings.Split(out, "\n") {
		pid, msg, ok := strings.Cut(strings.TrimSpace(l), ":\t")
		if !ok {
			continue
		}
		s := byPid[pid]
		if s == nil {
			s = &state{}
			byPid[pid] = s
		}
		if p, ok := strings.CutPrefix(msg, "calling init: "); ok {
			if strings.HasSuffix(p, "/ld-linux-x86-64.so.2") {
				s.prog, s.pending = "", nil // a new image (exec)
			}
			if s.prog == "" {
				s.pending = append(s.pending, p)
			} else {
				progs[s.prog] = append(progs[s.prog], p)
			}
		} else if p, ok := strings.CutPrefix(msg, "initialize program: "); ok {
			s.prog = p
			progs[p] = append(progs[p], s.pending...)
			s.pending = nil
		}
	}
	return progs
}

// untar unpacks a .tar.gz into dir and returns the paths it held.
func untar(t *testing.T, tarball, dir string) []string {
	t.Helper()
	f, err := os.Open(tarball)
	require.NoError(t, err)
	defer f.Close()
	gz, err := gzip.NewReader(f)
	require.NoError(t, err)
	tr := tar.NewReader(gz)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err, "%s", tarball)
		name := filepath.Clean(h.Name)
		require.False(t, strings.HasPrefix(name, "..") || filepath.IsAbs(name), "%s: entry %q outside the folder", tarball, h.Name)
		p := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			require.NoError(t, os.MkdirAll(p, 0o755))
		case tar.TypeReg:
			require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
			w, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o777)
			require.NoError(t, err)
			_, err = io.Copy(w, tr)
			require.NoError(t, err)
			require.NoError(t, w.Close())
			names = append(names, name)
		default:
			t.Fatalf("%s: entry %q of type %c: the kit holds only files and folders", tarball, h.Name, h.Typeflag)
		}
	}
	return names
}

// isDynamicELF reports whether p is an ELF file with a dynamic section
// (gpucheck is static: ldd has nothing to say about it).
func isDynamicELF(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	magic := make([]byte, 4)
	if _, err := io.ReadFull(f, magic); err != nil || !bytes.Equal(magic, []byte("\x7fELF")) {
		return false
	}
	out, err := exec.Command("readelf", "-d", p).Output()
	return err == nil && bytes.Contains(out, []byte("(NEEDED)"))
}

func run1(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	require.NoError(t, err, "%s %s", name, strings.Join(args, " "))
	return string(out)
}

// parseResults reads the report's RESULT lines: kind -> one map of fields
// per line (quoted values unquoted).
func parseResults(report string) map[string][]map[string]string {
	field := regexp.MustCompile(`([a-z_]+)=("(?:[^"\\]|\\.)*"|\S*)`)
	out := map[string][]map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(report))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "RESULT ")
		if !ok {
			continue
		}
		kind, rest, _ := strings.Cut(rest, " ")
		m := map[string]string{}
		for _, f := range field.FindAllStringSubmatch(rest, -1) {
			v := f[2]
			if uq, err := strconv.Unquote(v); err == nil && strings.HasPrefix(v, `"`) {
				v = uq
			}
			m[f[1]] = v
		}
		out[kind] = append(out[kind], m)
	}
	return out
}
