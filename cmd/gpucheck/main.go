package main

import (
	"fmt"
	"io"
	"os"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const usage = `usage: gpucheck COMMAND ARGS (docs/gpu-kit.md)
  stub DIR LIBRARY.so...
  ports N
  wait-http URL SECONDS
  metrics URL
  compare --redis HOST:PORT --ref STREAM --test STREAM [--ref-count N] [--test-count N] [--max-mad F] [--min-psnr DB] [--margin F]
  rawdiff --size WxH [--max-mad F] [--min-psnr DB] A.i420 B.i420
  del --redis HOST:PORT PATTERN...`

// run returns the exit status: 0 done (or within tolerance), 1 failed,
// 2 bad command line.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	cmds := map[string]func([]string, io.Writer, io.Writer) int{
		"stub":      cmdStub,
		"ports":     cmdPorts,
		"wait-http": cmdWaitHTTP,
		"metrics":   cmdMetrics,
		"compare":   cmdCompare,
		"rawdiff":   cmdRawdiff,
		"del":       cmdDel,
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "gpucheck: unknown command %q\n%s\n", args[0], usage)
		return 2
	}
	return cmd(args[1:], stdout, stderr)
}
