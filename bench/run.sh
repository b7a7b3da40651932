#!/usr/bin/env bash
# bench/run.sh [N] — libs3db against the test S3 server (s3rver behind the
# strict front, started here), with the server's own raw request rate
# measured in the same run by curl --parallel at the same concurrency:
#   raw PutObject / HeadObject rate (N empty objects, 16 in flight)
#   libs3db insertMany / getMany rate, and the ratio to the raw rate
# plus the S3 requests each operation makes.  Figures only; nothing fails
# on a number.  Needs a build in build/normal (scripts/test.sh or demo.sh).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-1000}
par=16
bin="$top/build/normal/bench/s3db-bench"
[ -x "$bin" ] || { ( cd "$top/build/normal" && make -s bench/s3db-bench ) || exit 1; }
export S3DB_TEST_RUNDIR=${S3DB_BENCH_RUNDIR:-$top/build/bench-servers}
bash "$top/tests/servers/servers.sh" start >/dev/null
trap 'bash "$top/tests/servers/servers.sh" stop >/dev/null 2>&1' EXIT
. "$S3DB_TEST_RUNDIR/env"
enc_secret=$(node -e 'console.log(encodeURIComponent(process.argv[1]))' "$S3DB_TEST_SECRET_KEY")
conn="http://$S3DB_TEST_ACCESS_KEY:$enc_secret@${S3DB_TEST_S3_URL#http://}/$S3DB_TEST_S3_BUCKET/bench-$$"

# raw server rate: curl signs with SigV4 itself; one config file, N requests
raw() { # raw METHOD -> requests/s
	local method=$1 cfg
	cfg=$(mktemp)
	for i in $(seq 1 "$n"); do
		printf 'url = "%s/%s/raw-%s/k%06d"\n' "$S3DB_TEST_S3_URL" "$S3DB_TEST_S3_BUCKET" "$$" "$i"
		[ "$method" = PUT ] && printf 'upload-file = "/dev/null"\n'
		[ "$method" = HEAD ] && printf 'head\n'
		printf 'output = "/dev/null"\n'
	done >"$cfg"
	local t0 t1
	t0=$(date +%s.%N)
	curl -s --no-progress-meter --parallel --parallel-max "$par" --aws-sigv4 "aws:amz:us-east-1:s3" \
		--user "$S3DB_TEST_ACCESS_KEY:$S3DB_TEST_SECRET_KEY" \
		-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" --config "$cfg" || true
	t1=$(date +%s.%N)
	rm -f "$cfg"
	echo "$n / ($t1 - $t0)" | bc -l
}
put_rate=$(raw PUT)
head_rate=$(raw HEAD)
printf 'server raw PutObject rate:  %.0f requests/s (%d requests, %d in flight, curl --parallel)\n' "$put_rate" "$n" "$par"
printf 'server raw HeadObject rate: %.0f requests/s\n' "$head_rate"

out=$("$bin" "$conn" "$n")
echo "$out"
ins=$(echo "$out" | awk '/^rate insertMany/ {print $3}')
get=$(echo "$out" | awk '/^rate getMany/ {print $3}')
printf 'insertMany / raw PUT rate:  %.0f%% (target >= 70%%; insert = 1 PUT + 1 partition PUT)\n' \
	"$(echo "100 * $ins / $put_rate" | bc -l)"
printf 'getMany / raw HEAD rate:    %.0f%% (target >= 70%%; get = 1 HEAD)\n' \
	"$(echo "100 * $get / $head_rate" | bc -l)"
