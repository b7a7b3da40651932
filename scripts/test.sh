#!/usr/bin/env bash
# test.sh — the whole test suite, from a fresh clone (README set-up command b).
#
#   1. installs every Debian and npm dependency (scripts/install-deps.sh);
#   2. builds out of tree in build/normal with -Wall -Wextra -Werror;
#   3. starts the servers the tests talk to (tests/servers/servers.sh):
#      s3rver behind our strict SigV4 front, on 127.0.0.1;
#   4. runs the suite (make check -> kyua);
#   5. builds again in build/asan with -fsanitize=address,undefined and runs
#      the suite once more (skip with S3DB_TEST_NO_ASAN=1);
#   6. prints the closing line "N passed, N failed" over both runs.
# Servers are stopped on exit, whatever happens.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=$(nproc 2>/dev/null || echo 2)

log() { printf '==> %s\n' "$*"; }

log "installing dependencies"
bash scripts/install-deps.sh || exit 1

log "autoreconf"
autoreconf -fi >/dev/null 2>&1 || { autoreconf -fi; exit 1; }

build() { # build DIR [configure args...]
	local dir=$1; shift
	mkdir -p "$dir"
	( cd "$dir" && "$top/configure" -q "$@" >/dev/null && make -s -j"$jobs" >/dev/null ) || {
		( cd "$dir" && make -j"$jobs" 2>&1 | tail -n 40 )
		return 1
	}
}

export S3DB_TEST_RUNDIR="$top/build/servers"
stop_servers() { bash tests/servers/servers.sh stop >/dev/null 2>&1 || true; }
trap stop_servers EXIT

log "building (build/normal)"
build build/normal || exit 1

log "starting test servers"
bash tests/servers/servers.sh start || exit 1
# shellcheck disable=SC1091
. "$S3DB_TEST_RUNDIR/env"

total_pass=0 total_fail=0 total_skip=0
run_suite() { # run_suite DIR LABEL
	local dir=$1 label=$2
	log "running the suite ($label)"
	( cd "$dir" && make -s check 2>&1 ) | tee "$dir/check.log" | grep -vE '^(make|Making)' | tail -n 60
	local line
	line=$(cat "$dir/tests/kyua-summary.txt" 2>/dev/null || echo "0 passed, 1 failed, 0 skipped")
	local p f s
	p=$(echo "$line" | grep -oE '^[0-9]+'); f=$(echo "$line" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+')
	s=$(echo "$line" | grep -oE '[0-9]+ skipped' | grep -oE '[0-9]+' || echo 0)
	total_pass=$((total_pass + p)); total_fail=$((total_fail + f)); total_skip=$((total_skip + ${s:-0}))
	echo "$label: $line"
}
run_suite build/normal "normal build"

if [ "${S3DB_TEST_NO_ASAN:-0}" != 1 ]; then
	log "building with AddressSanitizer + UBSan (build/asan)"
	if build build/asan --enable-sanitizers; then
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		LSAN_OPTIONS="suppressions=$top/tests/sanitizers/lsan.supp:print_suppressions=0" \
			run_suite build/asan "asan+ubsan build"
	else
		total_fail=$((total_fail + 1))
	fi
fi

log "fuzzing (libFuzzer, ${S3DB_FUZZ_SECONDS:-20} s a target)"
fuzz_line=$(bash scripts/fuzz.sh "${S3DB_FUZZ_SECONDS:-20}" 2>&1 | tee build/fuzz.log | tail -n 1)
grep -E '^(PASS|FAIL)' build/fuzz.log
fp=$(echo "$fuzz_line" | grep -oE '^[0-9]+' || echo 0)
ff=$(echo "$fuzz_line" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+' || echo 1)
total_pass=$((total_pass + fp)); total_fail=$((total_fail + ff))

echo "$total_pass passed, $total_fail failed, $total_skip skipped"
[ "$total_fail" -eq 0 ]
