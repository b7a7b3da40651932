#!/usr/bin/env bash
# fuzz.sh [SECONDS] — builds the libFuzzer targets of tests/fuzz with clang
# (-fsanitize=fuzzer,address,undefined) and runs each for SECONDS (default
# 30), starting from the seed corpus in tests/fuzz/corpus/TARGET.  Prints
# one PASS/FAIL line per target and "N passed, N failed"; a crash leaves
# its input in build/fuzz/crash-* and fails.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-30}
out="$top/build/fuzz"
mkdir -p "$out"
srcs=$(ls "$top"/src/*.c | grep -vE '/(cli|fs_fuse|s3dbfs)\.c$')
flags="-g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -I$top/src \
 $(pkg-config --cflags libcurl openssl json-c zlib)"
libs="$(pkg-config --libs libcurl openssl json-c zlib) -lm -lpthread"
pass=0 fail=0
for t in fuzz_metadata fuzz_record fuzz_conn; do
	if ! clang $flags "$top/tests/fuzz/$t.c" $srcs -o "$out/$t" $libs 2>"$out/$t.build.log"; then
		echo "FAIL: $t does not build"; tail -n 20 "$out/$t.build.log"; fail=$((fail + 1)); continue
	fi
	corpus="$out/corpus-$t"
	mkdir -p "$corpus"
	[ -d "$top/tests/fuzz/corpus/$t" ] && cp -n "$top/tests/fuzz/corpus/$t"/* "$corpus"/ 2>/dev/null
	if (cd "$out" && ASAN_OPTIONS=detect_leaks=1 "./$t" -max_total_time="$secs" -max_len=4096 \
		-timeout=10 -rss_limit_mb=2048 "$corpus" >"$out/$t.log" 2>&1); then
		echo "PASS: $t ($(grep -oE 'stat::number_of_executed_units: [0-9]+' "$out/$t.log" | grep -oE '[0-9]+' || grep -oE '#[0-9]+' "$out/$t.log" | tail -n1) runs in ${secs}s)"
		pass=$((pass + 1))
	else
		echo "FAIL: $t"; grep -A 30 -E 'ERROR|runtime error|round trip|abort' "$out/$t.log" | head -n 40
		fail=$((fail + 1))
	fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
