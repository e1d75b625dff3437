package e2e

import (
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
