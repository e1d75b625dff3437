package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cc compiles with the system C compiler (cgo needs one anyway).
func cc(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("cc", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "cc %s: %s", strings.Join(args, " "), out)
}

// A program linked against a real versioned library (a function, an
// object, a C++-style name, a versioned and an unversioned symbol) loads
// against its stub, with BIND_NOW as FFmpeg's libraries are linked; calling
// a function of the stub aborts, naming the library and the function.
func TestStubLoadsAndAbortsWhenCalled(t *testing.T) {
	if _, err := exec.LookPath("cc"); err != nil {
		t.Fatalf("cc not found (the kit build needs a C compiler): %v", err)
	}
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	stub := filepath.Join(dir, "stub")
	require.NoError(t, os.MkdirAll(real, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "kit.c"), []byte(`
int kit_table[16] = {1, 2, 3};
int kit_f(int x) { return x + kit_table[0]; }
int kit_new(int x) { return 2 * x; }
int _ZN3kit4lateEv(void) { return 7; }
`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "kit.map"), []byte("KIT_1 { global: kit_f; kit_table; _ZN3kit4lateEv; local: *; };\nKIT_2 { global: kit_new; } KIT_1;\n"), 0o644))
	cc(t, dir, "-shared", "-fPIC", "-o", "real/libkit.so.1", "kit.c", "-Wl,-soname,libkit.so.1", "-Wl,--version-script,kit.map")
	require.NoError(t, os.Symlink("libkit.so.1", filepath.Join(real, "libkit.so")))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "prog.c"), []byte(`
#include <stdio.h>
extern int kit_table[16];
int kit_f(int);
int kit_new(int);
int (*volatile keep)(int) = kit_new; /* imported, never called */
int main(int argc, char **argv) {
  printf("loaded %d\n", kit_table[0]);
  fflush(stdout);
  if (argc > 1) return kit_f(1);
  return 0;
}
`), 0o644))
	cc(t, dir, "-o", "prog", "prog.c", "-Lreal", "-lkit", "-Wl,-z,now")

	var out, errOut bytes.Buffer
	require.Equal(t, 0, run([]string{"stub", filepath.Join(dir, "src"), filepath.Join(real, "libkit.so.1")}, &out, &errOut), errOut.String())
	fields := strings.Fields(out.String())
	require.Len(t, fields, 3, "soname, C file and version script: %q", out.String())
	assert.Equal(t, "libkit.so.1", fields[0])
	src, err := os.ReadFile(fields[1])
	require.NoError(t, err)
	assert.Contains(t, string(src), `__asm__("_ZN3kit4lateEv")`)
	vmap, err := os.ReadFile(fields[2])
	require.NoError(t, err)
	assert.Contains(t, string(vmap), "KIT_2 {")
	assert.Contains(t, string(vmap), "} KIT_1;")
	require.NoError(t, os.MkdirAll(stub, 0o755))
	cc(t, dir, "-shared", "-fPIC", "-o", "stub/libkit.so.1", fields[1], "-Wl,-soname,libkit.so.1", "-Wl,--version-script,"+fields[2])

	// Real library: runs and calls.
	cmd := exec.Command(filepath.Join(dir, "prog"), "call")
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+real)
	got, err := cmd.CombinedOutput()
	require.Error(t, err, "kit_f(1) returns 2 as the exit status")
	assert.Equal(t, "loaded 1\n", string(got))

	// Stub: loads (every import bound, versions satisfied), the object
	// reads as zero, and a call aborts with a message.
	cmd = exec.Command(filepath.Join(dir, "prog"))
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+stub, "LD_BIND_NOW=1")
	got, err = cmd.CombinedOutput()
	require.NoError(t, err, "%s", got)
	assert.Equal(t, "loaded 0\n", string(got))

	cmd = exec.Command(filepath.Join(dir, "prog"), "call")
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+stub)
	got, err = cmd.CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(got), "gpu-kit: libkit.so.1 is a stub in this kit")
	assert.Contains(t, string(got), "its kit_f() was called; aborting")

	// The version script matters: without it the dynamic linker warns
	// (the run above printed nothing but "loaded 0").
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "nover"), 0o755))
	cc(t, dir, "-shared", "-fPIC", "-o", "nover/libkit.so.1", fields[1], "-Wl,-soname,libkit.so.1")
	cmd = exec.Command(filepath.Join(dir, "prog"))
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+filepath.Join(dir, "nover"))
	got, _ = cmd.CombinedOutput()
	assert.Contains(t, string(got), "no version information available")

	// A file that is not a shared library is refused, named.
	errOut.Reset()
	require.Equal(t, 1, run([]string{"stub", filepath.Join(dir, "src2"), filepath.Join(dir, "kit.c")}, &out, &errOut))
	assert.Contains(t, errOut.String(), "kit.c")
}
