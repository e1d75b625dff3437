#!/usr/bin/env bash
# gotest.sh ARGS...: `go test ARGS` with its whole output kept in
# bin/logs/, and, when it fails, a summary printed last: the failed tests and,
# for a test binary that crashed, the signal, where it arrived and the test
# that was running. CI shows only the end of a run's output, and a crash's
# end is a register dump that names nothing.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin/logs
log="bin/logs/gotest-$(date +%Y%m%dT%H%M%S)-$$.log"
"${GO:-go}" test "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ]; then
	echo
	echo "=== gotest.sh: go test failed (exit $rc); full output in $log"
	echo "--- failed tests and packages:"
	grep -E '^(--- FAIL|FAIL|panic:|fatal error:)' "$log" | head -40
	if grep -qE '^(SIGSEGV|SIGBUS|SIGABRT|SIGILL|SIGFPE|SIGTRAP)|^fatal error: unexpected signal' "$log"; then
		echo "--- crash: the signal, the goroutine it arrived on, and the tests in the stacks:"
		grep -m1 -A12 -E '^(SIGSEGV|SIGBUS|SIGABRT|SIGILL|SIGFPE|SIGTRAP)|^fatal error: unexpected signal' "$log"
		grep -oE 'gstcapture/[A-Za-z0-9_/]+\.(\(\*?[A-Za-z0-9_]+\)\.)?[A-Za-z0-9_]+' "$log" | sort | uniq -c | sort -rn | head -25
	fi
fi
exit "$rc"
