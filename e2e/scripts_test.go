package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/testenv"
)

// scriptEnv is the environment without the variables a script test sets
// itself, so the developer's own MIRROR or SUITE cannot change the result.
func scriptEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if name != "MIRROR" && name != "SUITE" && name != "APT_ROOT" {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// scripts/base-images.sh --print-mirror takes the mirror from the host's
// apt sources, in both formats, read under APT_ROOT.
func TestBaseImagesMirror(t *testing.T) {
	const debianSources = `Types: deb
# http://snapshot.debian.org/archive/debian-security/20250520T000000Z
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`
	const def = "http://deb.debian.org/debian"
	cases := []struct {
		name  string
		files map[string]string // path under APT_ROOT -> content
		env   []string
		want  string
	}{
		{"stock Debian 12, deb822", map[string]string{"etc/apt/sources.list.d/debian.sources": debianSources}, nil, def},
		{"local mirror, deb822", map[string]string{"etc/apt/sources.list.d/debian.sources": `# local
Types: deb-src
URIs: http://src.lan/debian
Suites: bookworm
Components: main

types: deb
uris: http://mirror.lan:3142/debian/
 http://second.lan/debian
suites: bookworm
 bookworm-updates
components: main contrib
signed-by:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mQINBGPL0BUBEADmW5NdOOHwPIJlgPu6JDcKw/NZJPR8lsD3K87ZM18gIfGjzsAn
 -----END PGP PUBLIC KEY BLOCK-----
`}, nil, "http://mirror.lan:3142/debian"},
		{"one-line sources.list", map[string]string{"etc/apt/sources.list": `# deb http://commented.lan/debian bookworm main
deb-src http://src.lan/debian bookworm main
  deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://ftp.lan/debian/ bookworm main contrib # comment
deb http://security.debian.org/debian-security bookworm-security main
`}, nil, "http://ftp.lan/debian"},
		{"sources.list before sources.list.d", map[string]string{
			"etc/apt/sources.list":                  "deb http://first.lan/debian bookworm main\n",
			"etc/apt/sources.list.d/debian.sources": debianSources,
		}, nil, "http://first.lan/debian"},
		{"third-party repositories skipped", map[string]string{
			"etc/apt/sources.list":                    "# moved to sources.list.d\n",
			"etc/apt/sources.list.d/a-docker.list":    "deb [arch=amd64] https://download.docker.com/linux/debian bookworm stable\n",
			"etc/apt/sources.list.d/b-node.sources":   "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\nComponents: main\n",
			"etc/apt/sources.list.d/c-sury.list":      "deb https://packages.sury.org/php/ bookworm main\n",
			"etc/apt/sources.list.d/d-cdrom.list":     "deb cdrom:[Debian GNU/Linux 12]/ bookworm main\n",
			"etc/apt/sources.list.d/e-mirror.list":    "deb mirror+http://mirrors.lan/list.txt bookworm main\n",
			"etc/apt/sources.list.d/f-off.sources":    "Types: deb\nURIs: http://disabled.lan/debian\nSuites: bookworm\nComponents: main\nEnabled: no\n",
			"etc/apt/sources.list.d/z-debian.sources": strings.ReplaceAll(debianSources, "deb.debian.org", "local.lan"),
			"etc/apt/sources.list.d/z-ignored.save":   "deb http://ignored.lan/debian bookworm main\n",
		}, nil, "http://local.lan/debian"},
		{"a Debian archive path beats a bookworm suite elsewhere", map[string]string{
			"etc/apt/sources.list": "deb https://packages.sury.org/php/ bookworm main\ndeb http://other.lan/debian trixie main\n",
		}, nil, "http://other.lan/debian"},
		{"a mirror at another path", map[string]string{
			"etc/apt/sources.list": "deb http://aptly.lan/trixie trixie main\ndeb http://aptly.lan/bookworm bookworm main\n",
		}, nil, "http://aptly.lan/bookworm"},
		{"another Debian release", map[string]string{
			"etc/apt/sources.list.d/debian.sources": "Types: deb\nURIs: http://trixie.lan/debian\nSuites: trixie trixie-updates\nComponents: main\n",
		}, nil, "http://trixie.lan/debian"},
		{"SUITE chooses among them", map[string]string{
			"etc/apt/sources.list": "deb http://old.lan/debian bookworm main\ndeb http://new.lan/debian trixie main\n",
		}, []string{"SUITE=trixie"}, "http://new.lan/debian"},
		{"Ubuntu host: the default", map[string]string{
			"etc/apt/sources.list": "deb http://archive.ubuntu.com/ubuntu jammy main restricted\n",
		}, nil, def},
		{"no apt sources: the default", nil, nil, def},
		{"MIRROR wins", map[string]string{"etc/apt/sources.list.d/debian.sources": debianSources},
			[]string{"MIRROR=http://given.lan/debian"}, "http://given.lan/debian"},
	}
	script := filepath.Join(repoRoot(t), "scripts", "base-images.sh")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for p, body := range tc.files {
				full := filepath.Join(root, p)
				require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
				require.NoError(t, os.WriteFile(full, []byte(body), 0o644))
			}
			cmd := exec.Command("bash", script, "--print-mirror")
			cmd.Env = scriptEnv(append([]string{"APT_ROOT=" + root}, tc.env...)...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			require.NoError(t, err, "stderr: %s", stderr.String())
			assert.Equal(t, tc.want+"\n", string(out), "stderr: %s", stderr.String())
			if tc.want == def && tc.files["etc/apt/sources.list.d/debian.sources"] == "" {
				assert.Contains(t, stderr.String(), "no Debian mirror in the apt sources", "the fallback is said")
			}
		})
	}
}

// The "Newest entry" command `make demo` prints shows an entry's fields,
// not its pixels. It is taken from scripts/demo.sh as bash prints it and run
// against a real redis-server holding an entry with a 2 MB data field.
func TestDemoNewestEntryCommand(t *testing.T) {
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Fatalf("redis-cli missing (Debian: apt-get install redis-tools): %v", err)
	}
	src, err := os.ReadFile(filepath.Join(repoRoot(t), "scripts", "demo.sh"))
	require.NoError(t, err)
	var line string
	for _, l := range strings.Split(string(src), "\n") {
		if strings.Contains(l, "Newest entry:") {
			line = l
		}
	}
	require.NotEmpty(t, line, "scripts/demo.sh prints no \"Newest entry:\" line")

	rd := testenv.StartRedis(t)
	// The line sits in an unquoted here-document: let bash expand it as the
	// demo does, with the demo's Redis port.
	expand := exec.Command("bash", "-c", "cat <<MSG\n"+line+"\nMSG\n")
	expand.Env = append(scriptEnv(), "REDIS_PORT="+strconv.Itoa(rd.Port))
	printed, err := expand.Output()
	require.NoError(t, err)
	_, command, ok := strings.Cut(string(printed), "Newest entry:")
	require.True(t, ok)
	command = strings.TrimSpace(command)
	require.Contains(t, command, "redis-cli -p "+strconv.Itoa(rd.Port)+" ", "the command uses the demo's Redis")

	data := make([]byte, 2<<20)
	_, _ = rand.Read(data)
	copy(data, "\n\"data\"\n) \"data\"\n") // what a line-based filter could trip on
	c := rd.Client(t)
	require.NoError(t, c.XAdd(context.Background(), &redis.XAddArgs{
		Stream: "frames:cam1",
		Values: []any{"v", "1", "frame_id", "cam1-x-7", "size_bytes", strconv.Itoa(len(data)), "data", data, "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
	}).Err())

	out, err := exec.Command("bash", "-c", command).CombinedOutput()
	require.NoError(t, err, "%s: %s", command, out)
	if len(out) < 4000 {
		t.Logf("%s\n%s", command, out)
	}
	assert.Less(t, len(out), 2000, "the pixels are not printed")
	for _, want := range []string{`"frame_id"`, `"cam1-x-7"`, `"size_bytes"`, `"` + strconv.Itoa(len(data)) + `"`, `"data"`, `"traceparent"`, `"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"`} {
		assert.Contains(t, string(out), want)
	}
}
