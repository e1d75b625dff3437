package main

// Stub libraries for the GPU check kit. libavcodec, libavformat and
// libavfilter link some fifty libraries (AV1, JPEG XL, SVG, speech, network
// protocols...) that the kit's pipelines never use; with them the kit is
// ~230 MB, over its 60 MiB. A stub has the real library's soname, its
// exported symbols with their versions (so the dynamic linker, which binds
// FFmpeg's imports at load time, is satisfied) and no code: every function
// writes which one was called and aborts.

import (
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// stubSymbol is one exported symbol of the real library.
type stubSymbol struct {
	name    string
	version string // "" when unversioned
	kind    elf.SymType
	size    uint64
}

// stubLib is what a stub of one library must define.
type stubLib struct {
	soname   string
	versions []elf.DynamicVersion // the real library's, base version left out
	symbols  []stubSymbol
}

// readStubLib reads the soname, version definitions and exported symbols of
// the shared library at path.
func readStubLib(path string) (stubLib, error) {
	f, err := elf.Open(path)
	if err != nil {
		return stubLib{}, fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	var lib stubLib
	names, err := f.DynString(elf.DT_SONAME)
	if err != nil || len(names) == 0 {
		return stubLib{}, fmt.Errorf("%s: no DT_SONAME (not a shared library?)", path)
	}
	lib.soname = names[0]
	if verdef, _ := f.DynValue(elf.DT_VERDEF); len(verdef) > 0 {
		vers, err := f.DynamicVersions()
		if err != nil {
			return stubLib{}, fmt.Errorf("%s: version definitions: %w", path, err)
		}
		for _, v := range vers {
			if v.Flags&elf.VER_FLG_BASE == 0 {
				lib.versions = append(lib.versions, v)
			}
		}
	}
	syms, err := f.DynamicSymbols()
	if err != nil {
		return stubLib{}, fmt.Errorf("%s: dynamic symbols: %w", path, err)
	}
	seen := map[string]bool{}
	for _, s := range syms {
		bind := elf.ST_BIND(s.Info)
		if s.Section == elf.SHN_UNDEF || s.Section == elf.SHN_ABS || (bind != elf.STB_GLOBAL && bind != elf.STB_WEAK) {
			continue
		}
		// Compatibility versions (sym@VER, not @@VER) are left out: the
		// kit's objects were linked against this same library, so they
		// import default versions.
		if s.HasVersion && s.VersionIndex.IsHidden() {
			continue
		}
		kind := elf.ST_TYPE(s.Info)
		switch kind {
		case elf.STT_FUNC, elf.STT_GNU_IFUNC, elf.STT_OBJECT, elf.STT_TLS, elf.STT_COMMON:
		default:
			continue // linker-made markers (_end, __bss_start) and the like
		}
		if seen[s.Name] {
			continue
		}
		seen[s.Name] = true
		ver := ""
		if s.HasVersion && s.VersionIndex.Index() > 1 {
			ver = s.Version
		}
		lib.symbols = append(lib.symbols, stubSymbol{name: s.Name, version: ver, kind: kind, size: s.Size})
	}
	sort.Slice(lib.symbols, func(i, j int) bool { return lib.symbols[i].name < lib.symbols[j].name })
	return lib, nil
}

// writeC writes the stub's C source. Every symbol is defined under a C
// identifier of our own with an asm label giving its real name, so no
// exported name can clash with C or with what the stub itself calls.
func (l stubLib) writeC(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "/* Stub of %s for the GPU check kit, made by gpucheck stub (cmd/gpucheck/stub.go). */\n", l.soname)
	b.WriteString("extern long write(int, const void *, unsigned long);\n")
	b.WriteString("static void gk_called(const char *what) {\n")
	fmt.Fprintf(&b, "  static const char pre[] = \"gpu-kit: %s is a stub in this kit (scripts/gpu-kit.sh leaves it out: nothing the kit runs should need it), and its \";\n", l.soname)
	b.WriteString("  static const char post[] = \" was called; aborting\\n\";\n")
	b.WriteString("  unsigned long n = 0;\n  while (what[n]) n++;\n")
	b.WriteString("  write(2, pre, sizeof pre - 1);\n  write(2, what, n);\n  write(2, post, sizeof post - 1);\n")
	b.WriteString("  __builtin_trap();\n}\n")
	for i, s := range l.symbols {
		asm := cString(s.name)
		switch s.kind {
		case elf.STT_OBJECT, elf.STT_COMMON:
			fmt.Fprintf(&b, "char gk_o%d[%d] __asm__(%s) __attribute__((aligned(16))) = {0};\n", i, max(s.size, 1), asm)
		case elf.STT_TLS:
			fmt.Fprintf(&b, "__thread char gk_t%d[%d] __asm__(%s) __attribute__((aligned(16)));\n", i, max(s.size, 1), asm)
		default:
			fmt.Fprintf(&b, "void gk_f%d(void) __asm__(%s);\nvoid gk_f%d(void) { gk_called(%s); }\n", i, asm, i, cString(s.name+"()"))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeMap writes the version script; false when the library has no
// versions (the stub then needs none).
func (l stubLib) writeMap(w io.Writer) (bool, error) {
	if len(l.versions) == 0 {
		return false, nil
	}
	byVer := map[string][]string{}
	for _, s := range l.symbols {
		v := s.version
		if v == "" {
			v = l.versions[0].Name // unversioned symbols of a versioned library
		}
		byVer[v] = append(byVer[v], s.name)
	}
	var b strings.Builder
	for i, v := range l.versions {
		fmt.Fprintf(&b, "%s {\n", v.Name)
		if names := byVer[v.Name]; len(names) > 0 {
			b.WriteString("  global:\n")
			for _, n := range names {
				fmt.Fprintf(&b, "    %s;\n", mapQuote(n))
			}
		}
		if i == 0 {
			b.WriteString("  local: *;\n")
		}
		b.WriteString("}")
		if len(v.Deps) > 0 {
			b.WriteString(" " + strings.Join(v.Deps, " "))
		}
		b.WriteString(";\n")
	}
	_, err := io.WriteString(w, b.String())
	return true, err
}

// cString quotes s as a C string literal.
func cString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range []byte(s) {
		if r == '"' || r == '\\' || r < 0x20 || r > 0x7e {
			fmt.Fprintf(&b, "\\%03o", r)
			continue
		}
		b.WriteByte(r)
	}
	b.WriteByte('"')
	return b.String()
}

// mapQuote quotes a symbol for a version script: C++ names and the like
// are matched literally.
func mapQuote(s string) string { return `"` + s + `"` }

// cmdStub writes DIR/SONAME.c (and DIR/SONAME.map when the library has
// versions) for each library and prints "SONAME C-FILE [MAP-FILE]" per line;
// scripts/gpu-kit.sh compiles them.
func cmdStub(args []string, stdout, stderr io.Writer) int {
	if len(args) < 2 {
		fmt.Fprintln(stderr, "usage: gpucheck stub DIR LIBRARY.so...")
		return 2
	}
	dir := args[0]
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(stderr, "gpucheck stub: %v\n", err)
		return 1
	}
	for _, path := range args[1:] {
		lib, err := readStubLib(path)
		if err != nil {
			fmt.Fprintf(stderr, "gpucheck stub: %v\n", err)
			return 1
		}
		cfile := filepath.Join(dir, lib.soname+".c")
		line := lib.soname + " " + cfile
		if err := writeFileWith(cfile, lib.writeC); err != nil {
			fmt.Fprintf(stderr, "gpucheck stub: %s: %v\n", path, err)
			return 1
		}
		mfile := filepath.Join(dir, lib.soname+".map")
		var has bool
		err = writeFileWith(mfile, func(w io.Writer) error {
			var err error
			has, err = lib.writeMap(w)
			return err
		})
		if err != nil {
			fmt.Fprintf(stderr, "gpucheck stub: %s: %v\n", path, err)
			return 1
		}
		if has {
			line += " " + mfile
		} else {
			_ = os.Remove(mfile)
		}
		fmt.Fprintln(stdout, line)
	}
	return 0
}

func writeFileWith(path string, fill func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := fill(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
