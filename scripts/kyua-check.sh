#!/usr/bin/env bash
# kyua-check.sh KYUA KYUAFILE BUILD_ROOT — runs the ATF suite with kyua and
# prints the closing line CI reads: "N passed, N failed[, N skipped]".
# (kyua's own summary counts skipped cases as passed, so we count.)
# Extra kyua arguments come from KYUA_ARGS (e.g. -v parallelism=2).
set -u
kyua=$1 kyuafile=$2 root=$3
results="$root/kyua-results.db"
rm -f "$results"
# shellcheck disable=SC2086
"$kyua" --config=none test ${KYUA_ARGS:-} --kyuafile="$kyuafile" --build-root="$root" \
	--results-file="$results" ${KYUA_FILTER:-} >"$root/kyua-test.log" 2>&1
status=$?
tail -n 3 "$root/kyua-test.log"
summary=$("$kyua" --config=none report --results-file="$results" --verbose \
	--results-filter=broken,failed 2>&1)
line=$(printf '%s\n' "$summary" | grep -E '^Test cases: ' | tail -n1)
if [ -z "$line" ]; then
	line=$("$kyua" --config=none report --results-file="$results" 2>&1 | grep -E '^Test cases: ' | tail -n1)
fi
num() { printf '%s\n' "$line" | grep -oE "[0-9]+ $1" | grep -oE '^[0-9]+' || echo 0; }
total=$(num total); skipped=$(num skipped); xfail=$(num 'expected failures')
broken=$(num broken); failed=$(num failed)
: "${total:=0}"
bad=$((failed + broken))
passed=$((total - skipped - xfail - bad))
if [ "$bad" -gt 0 ] || [ "$status" -ne 0 ]; then
	printf '%s\n' "$summary" | sed -n '/===> Failed tests/,$p;/===> Broken tests/,$p' | head -n 200
	"$kyua" --config=none report --results-file="$results" --verbose \
		--results-filter=broken,failed 2>/dev/null | grep -E '^===> |^Result:|^Reason|Standard (output|error)' | head -n 100
fi
# leftover FUSE mounts from a test that forgot to clean up
if grep -q ' fuse\.' /proc/mounts 2>/dev/null; then
	grep ' fuse\.' /proc/mounts | awk '{print $2}' | while read -r m; do
		case "$m" in /tmp/*|"$root"*) fusermount3 -uz "$m" 2>/dev/null ;; esac
	done
fi
echo "$passed passed, $bad failed, $skipped skipped" > "$root/kyua-summary.txt"
echo "$passed passed, $bad failed, $skipped skipped"
[ "$bad" -eq 0 ] && [ "$total" -gt 0 ]
