#!/usr/bin/env bash
# bench/fs_peers.sh [N...] — s3dbfs against the FUSE peers and against the
# server's own limits, in one run, on one server.
#
# Starts s3rver behind the strict SigV4 front (tests/servers/servers.sh),
# measures what that server can do at best (curl --aws-sigv4, no file
# system), then runs the same small-record workload (the one of
# ../shared/notes/peers.md) on each configuration:
#
#   local   a plain directory on local disk: the floor
#   s3fs    s3fs-fuse (1.90), SigV4 through the front, path style
#   rclone  rclone mount (1.60), type s3 provider Other, --vfs-cache-mode off
#   s3dbfs  our daemon (build/normal/src/s3dbfs), a resource directory
#           made with mkdir, records written as <id>.json
#
# The workload, per configuration, N and round (each on its own directory,
# or for s3dbfs its own database prefix):
#   create     N ~500-byte JSON records, one after another (a shell loop:
#              printf > DIR/<id>.json; no process per file)
#   (unmount, mount again: the next step starts with cold caches; local:
#    sync + drop the page cache)
#   ls-cold    ls -l DIR
#   ls-warm    ls -l DIR again
#   cat-all    cat every file (one cat process, files in turn)
#   grep-r     grep -r -l a word that one record in ten holds
#   rm-all     rm every file (rm unlinks them in turn)
#   par-write  ls SRC | xargs -P 16 -I{} cp SRC/{} DIR/{} — N records copied
#              by 16 concurrent writers from a local directory
#   (untimed: the copies are counted and removed)
#   par-thread the same N copies by 16 concurrent writers in one process
#              (node: open 'wx' = O_CREAT|O_EXCL as cp opens, write, close;
#              on a libuv pool of 16 threads), no process per file: on a
#              machine where the server shares the CPUs, par-write's N cp
#              processes (~1.7 ms of CPU each, through FUSE) slow the
#              server itself; par-thread is the file system's own write
#              rate with the same concurrency
#   (then, untimed: the copies are counted and removed, the mount ends)
# Each step prints its seconds and the S3 requests the front logged while
# it ran, by command (plus how many answered with an error status).
#
# Two things keep the local server a fair stand-in for S3, which runs on
# machines of its own (both measured; bench/README.md, Session 7):
#   - placement: s3rver and the front run on CPU SERVER_CPUS (0), every
#     client (the mounts, the tools of the workload, curl) on the other
#     CPUs — else a client's own CPU use (a cp process per file, the FUSE
#     round trips) slows the single-threaded server it is measured against.
#   - settling: s3rver answers the first 250-1,000 PUTs after a batch of
#     DELETEs ~60 % slower (whatever ran in between, even 10 s of sleep), so
#     every timed series of writes — create, par-write, par-thread, their
#     paired limits, the limits' PUTs — comes right after untimed
#     conditional PUTs into a scratch prefix, in batches of 250, at least
#     SETTLE (500) and until a batch is within 15 % of the fastest batch
#     of the run (at most SETTLE_MAX, 4000).  The scratch keys of the
#     settles and of the paired limits are deleted only after the timed
#     series they surround (after a step's "after" pair), so a step and
#     its two pairs all follow PUTs only.  logs/settle-<time>.txt shows
#     each settle's batches.
#
# Server limits, measured for each N before its workloads and again after
# them (the best of the two is the limit), with curl --aws-sigv4 through
# the front on a prefix holding N ~500-byte objects — the size of the
# workload's directories, as s3rver's costs grow with it:
#   concurrent: N PutObject, HeadObject, GetObject, later DeleteObject, PAR
#               (32) in flight (curl --parallel) -> requests/s
#   LIST:       the N keys, 1,000 a page, pages in turn (median of 3)
#   sequential: LIMIT_SEQ (200) PutObject / HeadObject / GetObject /
#               DeleteObject, one at a time on one connection -> ms each
# Each s3dbfs step is then compared with the cost of the requests an ideal
# client would make at those limits (the "limit" column):
#   create     N sequential PUT If-None-Match target <= 1.3x
#   ls-cold    the LIST pages + N GET at 32 in flight   target <= 1.25x
#   ls-warm    0 requests                     target 0 requests
#   cat-all    N sequential GET               target <= 1.25x
#   grep-r     N sequential GET               target <= 1.25x
#   rm-all     N sequential DELETE            target <= 1.25x
#   par-write  N PUT If-None-Match at the concurrent rate
#                                             target >= 70 % of that rate
#   par-thread the same (not a target of its own: it tells how much of
#              par-write's distance is the cp processes')
# and beside it the cost of the requests s3dbfs really made, priced the same
# way (so "slow because of extra requests" and "slow between requests" can
# be told apart).  Targets are printed, never enforced.
#
# The server's speed drifts by up to +-25 % over minutes (it shares two
# CPUs with everything else), so a limit measured minutes away from a step
# is a loose yardstick.  Paired limits (PAIRED=1, the default when LIMITS=1)
# measure, for s3dbfs's create, ls-cold, rm-all, par-write and par-thread,
# the step's own ideal requests with curl just before the step and again
# just after it (ls-cold's "after" waits until grep-r is done, so that
# ls-warm still finds the listing fresh); the mean of the two is that
# step's paired limit, and a second table shows each step against it,
# beside the global one.
#
# Environment:
#   N            record counts when no argument is given   ("1000 10000")
#   ROUNDS       rounds per configuration and N; the report shows medians (1)
#   CONFIGS      configurations to run, in order  ("local s3fs rclone s3dbfs")
#   WRITERS      concurrent writers of par-write (16)
#   PAR          requests in flight for the concurrent limits (32)
#   LIMIT_SEQ    requests per sequential limit (200)
#   LIMITS       0 skips the server limits (1)
#   PAIRED       0 skips the limits measured around each s3dbfs step (1)
#   STEP_TIMEOUT seconds after which a step is stopped and the rest of that
#                configuration's workload skipped (3600; 0: never)
#   S3DBFS       the daemon (build/normal/src/s3dbfs)
#   S3DB         the s3db tool (build/normal/src/s3db): with RESOURCE=schema
#                it stores the probe record whose object the limits' PUTs copy
#   RESOURCE     how s3dbfs's resource directory is made: free (mkdir; each
#                record's JSON is its object's body: one GET per record) or
#                schema (mkdir, then a .schema.json naming the record's
#                fields, behavior body-overflow: the fields go to the
#                object's metadata, as s3db.js stores them, and one HEAD
#                carries a record; ls-cold's ideal is then LIST + N HEAD)
#                (free)
#   S3DBFS_OPTS, S3FS_OPTS, RCLONE_OPTS   extra mount arguments
#   FS_PEERS_DIR work directory (build/fs-peers): servers, mount points, logs,
#                results-<time>.tsv and limits-<time>.txt
#   KEEP_LOG     1 keeps the front's request log (it grows to ~100 MB at N=10000)
#   SERVER_CPUS  the CPUs of s3rver and the front, as taskset -c takes them
#                ("0" on a machine of 2 CPUs or more; "none": no placement,
#                servers and clients share every CPU)
#   SETTLE       untimed conditional PUTs at least before every timed
#                series of writes (500; 0: no settling)
#   SETTLE_MAX   ... and at most (4000)
#
# Needs: bash 5, node and curl (servers.sh), s3fs, rclone, fusermount3, root
# for the FUSE mounts and drop_caches.  Everything it makes stays under
# FS_PEERS_DIR; on exit (also on failure or ^C) it unmounts what it mounted,
# stops the daemons it started and the servers.  Figures only: the exit
# status is 0 unless the set-up itself failed.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -gt 0 ]; then NS="$*"; else NS=${N:-1000 10000}; fi
ROUNDS=${ROUNDS:-1}
CONFIGS=${CONFIGS:-local s3fs rclone s3dbfs}
WRITERS=${WRITERS:-16}
PAR=${PAR:-32}
LIMIT_SEQ=${LIMIT_SEQ:-200}
LIMITS=${LIMITS:-1}
PAIRED=${PAIRED:-1}
RESOURCE=${RESOURCE:-free}
case $RESOURCE in free | schema) ;; *) echo "fs_peers.sh: RESOURCE is free or schema, not '$RESOURCE'" >&2; exit 2 ;; esac
STEP_TIMEOUT=${STEP_TIMEOUT:-3600}
SETTLE=${SETTLE:-500}
SETTLE_MAX=${SETTLE_MAX:-4000}
SERVER_CPUS=${SERVER_CPUS-}
S3DBFS=${S3DBFS:-$top/build/normal/src/s3dbfs}
S3DB=${S3DB:-$top/build/normal/src/s3db}
S3DBFS_OPTS=${S3DBFS_OPTS:-}
S3FS_OPTS=${S3FS_OPTS:-}
RCLONE_OPTS=${RCLONE_OPTS:-}
WORK=$(realpath -m "${FS_PEERS_DIR:-$top/build/fs-peers}")  # absolute: /proc/mounts shows absolute paths
KEEP_LOG=${KEEP_LOG:-0}
WORD=needle

[[ $STEP_TIMEOUT =~ ^[0-9]+$ ]] || { echo "fs_peers.sh: STEP_TIMEOUT must be a number of seconds" >&2; exit 2; }
[[ $SETTLE =~ ^[0-9]+$ && $SETTLE_MAX =~ ^[0-9]+$ ]] || { echo "fs_peers.sh: SETTLE and SETTLE_MAX must be numbers of PUTs" >&2; exit 2; }
for n in $NS; do
	[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "fs_peers.sh: N must be positive integers, not '$n'" >&2; exit 2; }
done
for c in $CONFIGS; do
	case $c in local | s3fs | rclone | s3dbfs) ;;
	*) echo "fs_peers.sh: unknown configuration '$c' (local s3fs rclone s3dbfs)" >&2; exit 2 ;;
	esac
done

mkdir -p "$WORK"
exec 9>"$WORK/lock"
flock -n 9 || { echo "fs_peers.sh: another run holds $WORK/lock" >&2; exit 1; }

stamp=$(date +%Y%m%d-%H%M%S)
RESULTS=$WORK/results-$stamp.tsv
LIMITS_OUT=$WORK/limits-$stamp.txt     # per N: before and after its workloads
PAIRS=$WORK/pairs-$stamp.tsv           # limits measured around s3dbfs's steps
LOGS=$WORK/logs
SETTLE_LOG=$LOGS/settle-$stamp.txt     # each settle's batches
export S3DB_TEST_RUNDIR=$WORK/servers
mkdir -p "$LOGS"

say() { printf '%s\n' "$*"; }
warn() { printf 'fs_peers.sh: %s\n' "$*" >&2; }

# ---- clean-up: every mount, daemon and server this run started ------------

DPID=""            # the FUSE daemon running now (one at a time)
servers_up=0

mounted() { awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; }

# unmount MNT: lazily when a plain unmount keeps failing (busy).
unmount() {
	local m=$1 i
	for ((i = 0; i < 5; i++)); do
		mounted "$m" || return 0
		fusermount3 -u "$m" 2>/dev/null && return 0
		sleep 1
	done
	mounted "$m" || return 0
	warn "$m is busy: detaching it lazily (fusermount3 -uz)"
	fusermount3 -uz "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
}

# stop_daemon: waits for the daemon to exit after its unmount (it may be
# storing pending writes), then TERM, then KILL.
stop_daemon() {
	local pid=$DPID i
	DPID=""
	[ -n "$pid" ] || return 0
	for ((i = 0; i < 600; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$pid" 2>/dev/null; then
		warn "daemon $pid still running 60 s after its unmount: SIGTERM"
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$? c
	trap - EXIT INT TERM
	for c in s3fs rclone s3dbfs; do unmount "$WORK/mnt/$c"; done
	stop_daemon
	if [ "$servers_up" = 1 ]; then
		bash "$top/tests/servers/servers.sh" stop >/dev/null 2>&1 || true
		rm -rf "$S3DB_TEST_RUNDIR/s3rver-data"
		[ "$KEEP_LOG" = 1 ] || rm -f "$S3DB_TEST_RUNDIR/front-requests.jsonl"
	fi
	rm -f "$WORK/passwd" "$WORK/rclone.conf" "$WORK/curl-auth" "$WORK/s3dbfs.pinned" "$WORK/record.meta" "$WORK/record.body"
	rm -rf "$WORK/local" "$WORK/rclone-cache"
	if grep -q " $WORK/" /proc/mounts; then
		warn "a mount is left under $WORK:"; grep " $WORK/" /proc/mounts >&2
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# leftovers of a run that was killed hard
for c in s3fs rclone s3dbfs; do unmount "$WORK/mnt/$c"; done

# ---- what is available -----------------------------------------------------

run_configs=""
for c in $CONFIGS; do
	case $c in
	s3fs) command -v s3fs >/dev/null || { warn "s3fs not installed (apt-get install s3fs): skipped"; continue; } ;;
	rclone) command -v rclone >/dev/null || { warn "rclone not installed (apt-get install rclone): skipped"; continue; } ;;
	s3dbfs)
		if [ ! -x "$S3DBFS" ]; then
			warn "s3dbfs: $S3DBFS is not built yet (cd build/normal && make): s3dbfs skipped"
			continue
		fi ;;
	esac
	run_configs="$run_configs $c"
done
command -v fusermount3 >/dev/null || { warn "fusermount3 not found (apt-get install fuse3)"; exit 1; }

# ---- the server --------------------------------------------------------------

# placement: the CPUs the server gets (SERVER_CPUS) and the ones every
# client gets (CLIENT_CPUS: the others this process may use); PLACEMENT
# says which, for the report.
allowed=$(taskset -pc $$ | sed 's/.*: //')
if [ -z "$SERVER_CPUS" ]; then
	if [ "$(nproc)" -ge 2 ]; then SERVER_CPUS=0; else SERVER_CPUS=none; fi
fi
if [ "$SERVER_CPUS" = none ]; then
	PLACEMENT="no placement: servers and clients share CPUs $allowed"
	server_run=()
else
	CLIENT_CPUS=$(node -e '
const expand = (l) => l.split(",").flatMap((r) => { const [a, b = a] = r.split("-").map(Number);
	return Array.from({ length: b - a + 1 }, (_, i) => a + i); });
const all = expand(process.argv[1]), server = expand(process.argv[2]);
if (!server.length || server.some((c) => !Number.isInteger(c) || !all.includes(c))) process.exit(1);
console.log(all.filter((c) => !server.includes(c)).join(","));' "$allowed" "$SERVER_CPUS") ||
		{ warn "SERVER_CPUS '$SERVER_CPUS' is not a list of this process's CPUs ($allowed)"; exit 2; }
	[ -n "$CLIENT_CPUS" ] || { warn "SERVER_CPUS $SERVER_CPUS leaves no CPU of $allowed to the clients"; exit 2; }
	PLACEMENT="server (s3rver, front) on CPU $SERVER_CPUS; mounts, tools and curl on CPU $CLIENT_CPUS"
	server_run=(taskset -c "$SERVER_CPUS")
fi

servers_up=1
"${server_run[@]}" bash "$top/tests/servers/servers.sh" start >/dev/null 9>&-
# from here on this shell and everything it starts runs on the clients' CPUs
[ "$SERVER_CPUS" = none ] || taskset -pc "$CLIENT_CPUS" $$ >/dev/null
# shellcheck disable=SC1091
. "$S3DB_TEST_RUNDIR/env"
URL=$S3DB_TEST_S3_URL
BUCKET=$S3DB_TEST_S3_BUCKET
FRONT_LOG=$S3DB_TEST_FRONT_LOG

# secrets in files (mode 0600), never in argv
umask 077
printf '%s:%s\n' "$S3DB_TEST_ACCESS_KEY" "$S3DB_TEST_SECRET_KEY" >"$WORK/passwd"
printf 'user = "%s:%s"\n' "$S3DB_TEST_ACCESS_KEY" "$S3DB_TEST_SECRET_KEY" >"$WORK/curl-auth"
cat >"$WORK/rclone.conf" <<EOF
[front]
type = s3
provider = Other
access_key_id = $S3DB_TEST_ACCESS_KEY
secret_access_key = $S3DB_TEST_SECRET_KEY
endpoint = $URL
region = us-east-1
force_path_style = true
EOF
umask 022

# ---- records -------------------------------------------------------------------

BIO="Sample profile text used by the s3dbfs benchmark so that each record is about five hundred bytes long."
BIO="$BIO It carries plain words only, a few numbers like 42 and 7, and nothing a search for the special word would match."
BIO="$BIO Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore."

# make_records DIR N: N records u000001.json ... (~500 bytes each; every
# tenth holds WORD), written one after another without forking.
make_records() {
	local d=$1 n=$2 i id tag
	for ((i = 1; i <= n; i++)); do
		printf -v id 'u%06d' "$i"
		tag=plain
		((i % 10 == 0)) && tag=$WORD
		printf '{"id":"%s","name":"User %d","email":"user%d@example.com","city":"Lisbon","tags":["alpha","beta","%s"],"created":"2024-01-01T00:00:00Z","score":%d,"bio":"%s"}\n' \
			"$id" "$i" "$i" "$tag" "$i" "$BIO" >"$d/$id.json"
	done
}

# ---- request counting ------------------------------------------------------------

now_us() { echo "${EPOCHREALTIME//[.,]/}"; }
log_size() { stat -c %s "$FRONT_LOG"; }

# count_requests FROM TO: the front's log entries between two byte offsets
# -> "TOTAL<TAB>Cmd=n Cmd=n...<TAB>ERRORS<TAB>SERVER" (ERRORS: entries with
# status >= 400 or 0, as "Cmd:status=n"; "-" when none; SERVER: the
# seconds the server spent on them, the sum of the front's duration_ms,
# from a request's arrival to its answer's end).
count_requests() {
	node - "$FRONT_LOG" "$1" "$2" <<'JS'
const fs = require('fs');
const [file, from, to] = [process.argv[2], +process.argv[3], +process.argv[4]];
const len = to - from, buf = Buffer.alloc(len), fd = fs.openSync(file, 'r');
let got = 0;
while (got < len) { const r = fs.readSync(fd, buf, got, len - got, from + got); if (r <= 0) break; got += r; }
const by = {}, err = {};
let total = 0, ms = 0;
for (const line of buf.toString('utf8', 0, got).split('\n')) {
	if (!line) continue;
	let e; try { e = JSON.parse(line); } catch { continue; }
	total++;
	ms += +e.duration_ms || 0;
	by[e.command] = (by[e.command] || 0) + 1;
	if (!(e.status >= 200 && e.status < 400)) { const k = `${e.command}:${e.status}`; err[k] = (err[k] || 0) + 1; }
}
const fmt = o => Object.keys(o).sort().map(k => `${k}=${o[k]}`).join(' ') || '-';
console.log(`${total}\t${fmt(by)}\t${fmt(err)}\t${(ms / 1000).toFixed(6)}`);
JS
}

# requests_since FROM: count_requests from byte offset FROM to the end of
# the front's log, once the last answer is logged.
requests_since() {
	sleep 0.1           # the front logs a request just after answering it
	count_requests "$1" "$(log_size)"
}

# step CFG N ROUND NAME CMD...: times CMD, counts the requests the front
# logged meanwhile, prints one line and appends it to RESULTS.
step() {
	local cfg=$1 n=$2 r=$3 name=$4 o0 t0 t1 rc=0 secs counts status total mix errs server
	shift 4
	curl -s -o /dev/null -X DELETE "$URL/__control/log" || true  # keeps the front's memory small
	o0=$(log_size)
	t0=$(now_us)
	limited "$@" || rc=$?
	t1=$(now_us)
	secs=$(printf '%d.%06d' $(((t1 - t0) / 1000000)) $(((t1 - t0) % 1000000)))
	counts=$(requests_since "$o0")
	status=ok
	[ "$rc" = 0 ] || status="FAILED(exit $rc)"
	[ "$rc" != 124 ] || status="TIMEOUT(after ${STEP_TIMEOUT}s)"
	IFS=$'\t' read -r total mix errs server <<<"$counts"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$cfg" "$r" "$name" "$secs" \
		"$total" "$mix" "$errs" "$status" "$server" >>"$RESULTS"
	printf '  %-7s N=%-6s r%s %-10s %9.3f s  %6s requests  %s%s%s\n' "$cfg" "$n" "$r" "$name" "$secs" \
		"$total" "$mix" "$([ "$errs" = - ] || printf '  answered >= 400: %s' "$errs")" \
		"$([ "$status" = ok ] || printf '  %s' "$status")"
	[ "$rc" != 124 ]
}

# limited CMD...: runs CMD; after STEP_TIMEOUT seconds (0: never) kills it
# and returns 124.  What CMD started and is stuck in the file system ends
# when the caller unmounts it.
limited() {
	[ "$STEP_TIMEOUT" -gt 0 ] || { "$@"; return; }
	local pid w finished rc=0
	"$@" &
	pid=$!
	sleep "$STEP_TIMEOUT" 9>&- &
	w=$!
	wait -n -p finished "$pid" "$w" || rc=$?
	if [ "$finished" = "$w" ]; then
		warn "step did not end within ${STEP_TIMEOUT}s (STEP_TIMEOUT): stopped"
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		return 124
	fi
	kill "$w" 2>/dev/null || true
	wait "$w" 2>/dev/null || true
	[ "$rc" != 124 ] || rc=1
	return "$rc"
}

# ---- the workload's steps ------------------------------------------------------------

do_ls() {  # do_ls DIR N: ls -l, checking that N entries are listed
	local c
	# shellcheck disable=SC2010 # the listing itself is what is measured
	c=$(ls -l "$1" | grep -c '\.json$' || true)
	[ "$c" = "$2" ] || { warn "ls -l $1 listed $c records, not $2"; return 1; }
}
do_cat() { printf '%s\0' "$1"/*.json | xargs -0 cat >/dev/null; }
do_grep() {
	local c
	c=$(grep -r -l "$WORD" "$1" | wc -l)
	[ "$c" = $(($2 / 10)) ] || { warn "grep -r found $c files in $1, not $(($2 / 10))"; return 1; }
}
do_rm() { printf '%s\0' "$1"/*.json | xargs -0 rm -f; }
# shellcheck disable=SC2011 # the names are u000001.json...
do_pwrite() { ls "$1" | xargs -P "$WRITERS" -I{} cp "$1/{}" "$2/{}"; }
# do_tcopy SRC DIR: par-thread — every file of SRC copied to DIR by
# WRITERS concurrent copies in one node process (a pool of WRITERS
# threads); each opened as cp opens a new file (O_CREAT|O_EXCL), written,
# closed.  Fails (naming the first failure) when any copy failed.
do_tcopy() {
	UV_THREADPOOL_SIZE=$WRITERS node - "$1" "$2" "$WRITERS" <<'JS'
const fsp = require('fs').promises, path = require('path');
const [src, dst, writers] = process.argv.slice(2);
(async () => {
	const names = (await fsp.readdir(src)).sort();
	let next = 0, failed = 0, first = null;
	async function writer() {
		for (let i = next++; i < names.length; i = next++) {
			try {
				const data = await fsp.readFile(path.join(src, names[i]));
				const fh = await fsp.open(path.join(dst, names[i]), 'wx');
				try { await fh.write(data, 0, data.length, 0); } finally { await fh.close(); }
			} catch (e) { failed++; first ||= `${names[i]}: ${e.message}`; }
		}
	}
	await Promise.all(Array.from({ length: +writers }, writer));
	if (failed) { console.error(`par-thread: ${failed} copies failed; the first: ${first}`); process.exit(1); }
})();
JS
}

# ---- mounts --------------------------------------------------------------------------

# wait_mounted MNT: until MNT is a mount (30 s), failing when the daemon dies.
wait_mounted() {
	local m=$1 i
	for ((i = 0; i < 300; i++)); do
		mounted "$m" && return 0
		kill -0 "$DPID" 2>/dev/null || { wait "$DPID" 2>/dev/null || true; DPID=""; return 1; }
		sleep 0.1
	done
	return 1
}

# mount_cfg CFG N ROUND: mounts (fresh daemon, empty caches); MNT is set.
mount_cfg() {
	local cfg=$1 n=$2 r=$3 dlog=$LOGS/$1-n$2-r$3.log
	MNT=$WORK/mnt/$cfg
	case $cfg in
	local)
		MNT=$WORK/local
		mkdir -p "$MNT"
		return 0 ;;
	s3fs)
		mkdir -p "$MNT"
		# shellcheck disable=SC2086
		s3fs "$BUCKET" "$MNT" -f -o passwd_file="$WORK/passwd" -o url="$URL" \
			-o use_path_request_style -o endpoint=us-east-1 -o sigv4 $S3FS_OPTS >>"$dlog" 2>&1 9>&- &
		DPID=$! ;;
	rclone)
		mkdir -p "$MNT"
		# AWS_CA_BUNDLE breaks rclone 1.60's s3 backend on a plain-http endpoint
		# shellcheck disable=SC2086
		env -u AWS_CA_BUNDLE rclone --config "$WORK/rclone.conf" mount "front:$BUCKET" "$MNT" \
			--vfs-cache-mode off --cache-dir "$WORK/rclone-cache" \
			--log-level NOTICE $RCLONE_OPTS >>"$dlog" 2>&1 9>&- &
		DPID=$! ;;
	s3dbfs)
		mkdir -p "$MNT"
		# one database per (N, round); credentials from the passwd file
		# shellcheck disable=SC2086
		"$S3DBFS" "$URL/$BUCKET/s3dbfs-n$n-r$r" "$MNT" -f -o passwd_file="$WORK/passwd" \
			$S3DBFS_OPTS >>"$dlog" 2>&1 9>&- &
		DPID=$! ;;
	esac
	if ! wait_mounted "$MNT"; then
		warn "$cfg did not mount on $MNT; the end of $dlog:"
		tail -n 20 "$dlog" >&2 || true
		unmount "$MNT"
		stop_daemon
		return 1
	fi
}

umount_cfg() {
	if [ "$1" = local ]; then
		sync
		echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || warn "cannot drop the page cache: local 'cold' is warm"
		return 0
	fi
	unmount "$MNT"
	stop_daemon
}

# dir_of CFG N ROUND: the directory the workload runs in, inside MNT.
dir_of() {
	case $1 in
	s3dbfs) echo "$MNT/users" ;;     # a resource of database s3dbfs-nN-rR
	*) echo "$MNT/$1-n$2-r$3" ;;
	esac
}

# record_read: the request that reads one of s3dbfs's records (GET when
# its JSON is the body, HEAD when its fields are in the metadata).
record_read() { if [ "$RESOURCE" = schema ]; then echo HEAD; else echo GET; fi; }

# schema_json: the definition of s3dbfs's resource with RESOURCE=schema:
# the record's fields, metadata storage (body-overflow), no timestamps.
schema_json() {
	printf '%s\n' '{"attributes": {"name": "string", "email": "string", "city": "string",' \
		' "tags": "array|items:string", "created": "string", "score": "number", "bio": "string"},' \
		' "behavior": "body-overflow", "timestamps": false}'
}

# make_resource CFG DIR: for s3dbfs with RESOURCE=schema, declares the
# record's fields in DIR/.schema.json.
make_resource() {
	[ "$1" = s3dbfs ] && [ "$RESOURCE" = schema ] || return 0
	schema_json >"$2/.schema.json"
}

# stored_record: the object the limits' PUTs write, as an insert of the
# benchmark's record stores it.  RESOURCE=free: the record's JSON as the
# body, no metadata.  RESOURCE=schema: the fields in the object's
# metadata; the s3db tool inserts the record into a probe database of the
# same definition (the library's own encoding, not a second copy of it
# written here), and that object's metadata headers and body become
# record.meta and record.body (a PUT carrying 8 metadata headers costs
# s3rver more than one carrying the same bytes as a body).
# s3db_tool ARGS...: the s3db tool on the bench servers, credentials in its environment.
s3db_tool() {
	AWS_ACCESS_KEY_ID=$S3DB_TEST_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3DB_TEST_SECRET_KEY "$S3DB" "$@"
}
stored_record() {
	cp "$WORK/record.json" "$WORK/record.body"
	: >"$WORK/record.meta"
	[ "$RESOURCE" = schema ] || return 0
	local db=$URL/$BUCKET/probe key=probe/resource%3Dusers/data/id%3Du000001
	[ -x "$S3DB" ] || { warn "RESOURCE=schema needs the s3db tool ($S3DB): cd build/normal && make"; return 1; }
	# credentials through the environment, never argv
	schema_json | s3db_tool "$db" schema users >/dev/null
	s3db_tool "$db" put users <"$WORK/record.json" >/dev/null
	curl -s --fail --no-progress-meter --aws-sigv4 "aws:amz:us-east-1:s3" --config "$WORK/curl-auth" \
		-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -D "$WORK/record.head" -o "$WORK/record.body" \
		"$URL/$BUCKET/$key"
	grep -i '^x-amz-meta-' "$WORK/record.head" | tr -d '\r' >"$WORK/record.meta"
	rm -f "$WORK/record.head"
	[ -s "$WORK/record.meta" ] || { warn "the probe record has no metadata"; return 1; }
}

# pair CFG N ROUND STEP WHEN: for s3dbfs (when paired limits are on),
# what STEP's ideal requests cost on the server right now, made with curl
# through the front.  Appends "N ROUND STEP WHEN SECONDS SERVER" to
# PAIRS: SECONDS priced for the whole step (N records); SERVER, for the
# steps made one request at a time (create, rm-all), the seconds the
# server spent on the timed requests (count_requests), else "-".  The
# keys it adds are removed later, untimed (defer_delete).  create and
# par-write make all N inserts, into a new prefix shaped as s3db's
# (PREFIX/resource=users/data/id=ID), as the step's records go into a
# new database: s3rver keeps a directory per prefix and a PUT costs it
# more the more keys that directory already holds.  ls-cold and rm-all
# work on the limits prefix of N keys.
pair() {
	local cfg=$1 n=$2 r=$3 st=$4 when=$5 p=limits/n$2 s l g stem fresh o0 srv=-
	[ "$cfg" = s3dbfs ] && [ "$LIMITS" = 1 ] && [ "$PAIRED" = 1 ] || return 0
	stem=p$r${st//-/}$when
	fresh=pairs/n$n-$stem/resource%3Dusers/data   # curl signs the path as given: '=' encoded
	settle_before "$st"
	case $st in
	create)     # N inserts one at a time into a new prefix
		o0=$(log_size)
		s=$(curl_batch PUTNEW 1 "$n" "$fresh" id%3Dk)
		srv=$(server_secs "$o0")
		defer_delete "$n" "$fresh" id%3Dk ;;
	ls-cold)    # the LIST pages of the N keys, then N GET (HEAD) at PAR in flight
		l=$(list_all "$p" "$n")
		g=$(curl_batch "$(record_read)" "$PAR" "$n" "$p" k)
		s=$(echo "$l + $g" | bc -l) ;;
	rm-all)     # LIMIT_SEQ deletes one at a time (of keys put untimed)
		curl_batch PUT "$PAR" "$LIMIT_SEQ" "$p" "$stem" >/dev/null
		o0=$(log_size)
		s=$(curl_batch DELETE 1 "$LIMIT_SEQ" "$p" "$stem")
		srv=$(server_secs "$o0")
		s=$(echo "$s / $LIMIT_SEQ * $n" | bc -l)
		srv=$(echo "$srv / $LIMIT_SEQ * $n" | bc -l) ;;
	par-write | par-thread)  # N inserts at PAR in flight into a new prefix
		s=$(curl_batch PUTNEW "$PAR" "$n" "$fresh" id%3Dk)
		defer_delete "$n" "$fresh" id%3Dk ;;
	*) return 0 ;;
	esac
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$r" "$st" "$when" "$s" "$srv" >>"$PAIRS"
}

# server_secs FROM: the seconds the server spent on the requests the front
# logged since byte offset FROM (count_requests' SERVER).
server_secs() { requests_since "$1" | cut -f4; }

# clear_copies CFG STEP DIR N: untimed, after a copying step: warns
# unless DIR holds N records, then removes them.
clear_copies() {
	local c
	# shellcheck disable=SC2010
	c=$(ls "$3" | grep -c '\.json$' || true)
	[ "$c" = "$4" ] || warn "$1: $2 left $c records in $3, not $4"
	do_rm "$3" || warn "$1: removing the $2 records failed"
}

# paired_step CFG N ROUND STEP CMD...: STEP timed (step), with its
# paired limits just before and just after it (pair); then the scratch
# keys of the pairs and settles are deleted (delete_deferred).
paired_step() {
	pair "$1" "$2" "$3" "$4" before &&
		settle_before "$4" &&
		step "$@" &&
		pair "$1" "$2" "$3" "$4" after &&
		delete_deferred
}

# settle_before STEP: settle when STEP is a series of writes.
settle_before() {
	case $1 in create | par-write | par-thread) settle "$1" ;; esac
}

# copy_step CFG N ROUND DIR STEP COPY: a copying step (par-write,
# par-thread): COPY SRC DIR from the N records' source into DIR (made
# again first: rclone forgets a directory that became empty), paired;
# then, untimed, the copies are counted and removed (clear_copies).
copy_step() {
	local d=$4
	mkdir -p "$d" && paired_step "$1" "$2" "$3" "$5" "$6" "$WORK/src-$2" "$d" || return 1
	clear_copies "$1" "$5" "$d" "$2"
}

# run_workload CFG N ROUND: the steps on one configuration.
run_workload() {
	local cfg=$1 n=$2 r=$3 d
	mount_cfg "$cfg" "$n" "$r" || return 1
	d=$(dir_of "$cfg" "$n" "$r")
	if ! mkdir "$d" || ! make_resource "$cfg" "$d"; then
		warn "$cfg: making the directory $d failed; workload skipped"
		umount_cfg "$cfg"
		return 1
	fi
	# a step that times out ends the workload on this configuration
	paired_step "$cfg" "$n" "$r" create make_records "$d" "$n" || { umount_cfg "$cfg"; return 1; }
	umount_cfg "$cfg"
	mount_cfg "$cfg" "$n" "$r" || return 1
	if ! { pair "$cfg" "$n" "$r" ls-cold before &&
		step "$cfg" "$n" "$r" ls-cold do_ls "$d" "$n" &&
		step "$cfg" "$n" "$r" ls-warm do_ls "$d" "$n" &&
		step "$cfg" "$n" "$r" cat-all do_cat "$d" &&
		step "$cfg" "$n" "$r" grep-r do_grep "$d" "$n" &&
		pair "$cfg" "$n" "$r" ls-cold after &&
		paired_step "$cfg" "$n" "$r" rm-all do_rm "$d" &&
		copy_step "$cfg" "$n" "$r" "$d" par-write do_pwrite &&
		copy_step "$cfg" "$n" "$r" "$d" par-thread do_tcopy; }; then
		umount_cfg "$cfg"
		return 1
	fi
	rmdir "$d" 2>/dev/null || true
	umount_cfg "$cfg"
}

# ---- the server's limits ------------------------------------------------------------------

# curl_batch METHOD INFLIGHT COUNT PREFIX STEM [FIRST]: COUNT requests on
# keys PREFIX/STEM000001.. (from STEMFIRST when FIRST is given), INFLIGHT
# at a time (1: in turn, on one connection); prints the seconds they
# took.  Warns about non-2xx answers.
curl_batch() {
	local method=$1 inflight=$2 count=$3 prefix=$4 stem=$5 first=${6:-1} cfg codes t0 t1 bad i
	cfg=$WORK/curl-batch.cfg
	{
		for ((i = first; i < first + count; i++)); do
			printf 'url = "%s/%s/%s/%s%06d"\n' "$URL" "$BUCKET" "$prefix" "$stem" "$i"
			case $method in
			PUT | PUTNEW) printf 'upload-file = "%s"\n' "$WORK/record.body" ;;
			HEAD) printf 'head\n' ;;
			DELETE) printf 'request = "DELETE"\n' ;;
			esac
			printf 'output = "/dev/null"\n'
		done
	} >"$cfg"
	local par=() cond=()
	[ "$inflight" -gt 1 ] && par=(--parallel --parallel-max "$inflight")
	# PUTNEW: a create that must not replace (If-None-Match: *), as an
	# insert is; the front emulates it with a HEAD to s3rver first
	[ "$method" = PUTNEW ] && cond=(-H "If-None-Match: *")
	# PUT, PUTNEW: the record as an insert stores it (stored_record)
	if [[ $method == PUT* ]] && [ -s "$WORK/record.meta" ]; then cond+=(-H "@$WORK/record.meta"); fi
	t0=$(now_us)
	codes=$(curl -s --no-progress-meter "${par[@]}" "${cond[@]}" --aws-sigv4 "aws:amz:us-east-1:s3" --config "$WORK/curl-auth" \
		-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -w '%{http_code}\n' --config "$cfg" || true)
	t1=$(now_us)
	rm -f "$cfg"
	bad=$(grep -cv '^2' <<<"$codes" || true)
	[ "$bad" = 0 ] || warn "limits: $bad of $count $method requests did not answer 2xx"
	echo "($t1 - $t0) / 1000000" | bc -l
}

# list_all PREFIX N: seconds to list the N keys PREFIX/k000001.. with
# ListObjectsV2, 1,000 a page, pages in turn on one connection (each page
# starts after the last key of the previous one, as a client paging with
# continuation tokens would).
list_all() {
	local prefix=$1 n=$2 cfg t0 t1 keys i enc
	cfg=$WORK/curl-list.cfg
	enc=${prefix//\//%2F}%2F
	for ((i = 0; i < n; i += 1000)); do
		# curl signs the query as given: parameters sorted, '/' encoded
		if [ "$i" = 0 ]; then
			printf 'url = "%s/%s?list-type=2&max-keys=1000&prefix=%s"\n' "$URL" "$BUCKET" "$enc"
		else
			printf 'url = "%s/%s?list-type=2&max-keys=1000&prefix=%s&start-after=%sk%06d"\n' \
				"$URL" "$BUCKET" "$enc" "$enc" "$i"
		fi
	done >"$cfg"
	t0=$(now_us)
	keys=$(curl -s --no-progress-meter --aws-sigv4 "aws:amz:us-east-1:s3" --config "$WORK/curl-auth" \
		-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" --config "$cfg" | grep -o '<Key>' | wc -l)
	t1=$(now_us)
	rm -f "$cfg"
	[ "$keys" = "$n" ] || warn "limits: the LIST returned $keys keys, not $n"
	echo "($t1 - $t0) / 1000000" | bc -l
}

median3() { printf '%s\n' "$@" | sort -g | sed -n 2p; }

# settle LABEL: untimed, just before a timed series of writes (LABEL
# names it in SETTLE_LOG): conditional PUTs one at a time on new keys
# settle/sK/k000001.., in batches of SETTLE_BATCH, at least SETTLE and
# until a batch's time per PUT is within 15 % of SETTLE_BEST, the best
# of any batch so far (at most SETTLE_MAX): whatever the server did
# before (a batch of DELETEs slows its next 250-1,000 PUTs), every timed
# series of writes starts on a server that answers PUTs at its pace.
# The keys are removed later (defer_delete), never between a settle and
# the series it prepares.
SETTLED=0            # settles made; the last one's keys are settle/s$SETTLED
SETTLE_BATCH=250
SETTLE_BEST=""       # seconds per PUT of the fastest batch so far
settle() {
	[ "$SETTLE" -gt 0 ] || return 0
	SETTLED=$((SETTLED + 1))
	local made=0 s per times=""
	while :; do
		s=$(curl_batch PUTNEW 1 "$SETTLE_BATCH" "settle/s$SETTLED" k $((made + 1)))
		made=$((made + SETTLE_BATCH))
		per=$(echo "$s / $SETTLE_BATCH" | bc -l)
		times="$times $(printf '%.2f' "$(echo "$per * 1000" | bc -l)")"
		if [ -z "$SETTLE_BEST" ] || [ "$(echo "$per < $SETTLE_BEST" | bc -l)" = 1 ]; then
			SETTLE_BEST=$per
		fi
		if [ "$made" -ge "$SETTLE_MAX" ]; then break; fi
		if [ "$made" -lt "$SETTLE" ]; then continue; fi
		if [ "$(echo "$per <= 1.15 * $SETTLE_BEST" | bc -l)" = 1 ]; then break; fi
	done
	printf 'settle %d before %s: %d PUTs; ms a PUT by batch of %d:%s\n' \
		"$SETTLED" "$1" "$made" "$SETTLE_BATCH" "$times" >>"$SETTLE_LOG"
	defer_delete "$made" "settle/s$SETTLED" k
}

# defer_delete COUNT PREFIX STEM: notes the keys PREFIX/STEM000001.. (as
# curl_batch names them) for delete_deferred.  A batch of DELETEs slows
# the server's next PUTs, so the scratch keys of settles and pairs are
# removed only after the timed series they surround.
DEFERRED=()          # "COUNT PREFIX STEM" entries
defer_delete() { DEFERRED+=("$1 $2 $3"); }

# delete_deferred: deletes the keys defer_delete noted (untimed, PAR in
# flight), so that the bucket does not grow with scratch keys.
delete_deferred() {
	local e count prefix stem
	for e in "${DEFERRED[@]}"; do
		read -r count prefix stem <<<"$e"
		curl_batch DELETE "$PAR" "$count" "$prefix" "$stem" >/dev/null
	done
	DEFERRED=()
}

# measure_limits N WHEN: the server's limits on a prefix holding N records,
# the size of the workload's directories (s3rver's costs grow with the
# number of keys under a prefix).  WHEN (before/after) names the new keys
# of the conditional PUTs.  Prints key=value lines.
measure_limits() {
	local n=$1 p=limits/n$1 w=$2 s
	settle "limits PUT"
	s=$(curl_batch PUT "$PAR" "$n" "$p" k);   echo "put_par=$(echo "$n / $s" | bc -l)"
	s=$(curl_batch HEAD "$PAR" "$n" "$p" k);  echo "head_par=$(echo "$n / $s" | bc -l)"
	s=$(curl_batch GET "$PAR" "$n" "$p" k);   echo "get_par=$(echo "$n / $s" | bc -l)"
	echo "list_all=$(median3 "$(list_all "$p" "$n")" "$(list_all "$p" "$n")" "$(list_all "$p" "$n")")"
	echo "list_pages=$(((n + 999) / 1000))"
	s=$(curl_batch PUT 1 "$LIMIT_SEQ" "$p" s);    echo "put_seq=$(echo "$s / $LIMIT_SEQ" | bc -l)"
	s=$(curl_batch HEAD 1 "$LIMIT_SEQ" "$p" s);   echo "head_seq=$(echo "$s / $LIMIT_SEQ" | bc -l)"
	s=$(curl_batch GET 1 "$LIMIT_SEQ" "$p" s);    echo "get_seq=$(echo "$s / $LIMIT_SEQ" | bc -l)"
	s=$(curl_batch DELETE 1 "$LIMIT_SEQ" "$p" s); echo "del_seq=$(echo "$s / $LIMIT_SEQ" | bc -l)"
	settle "limits PUTNEW"
	s=$(curl_batch PUTNEW 1 "$LIMIT_SEQ" "$p" "c$w"); echo "putnew_seq=$(echo "$s / $LIMIT_SEQ" | bc -l)"
	s=$(curl_batch PUTNEW "$PAR" "$n" "$p" "n$w");    echo "putnew_par=$(echo "$n / $s" | bc -l)"
	delete_deferred
	curl_batch DELETE "$PAR" "$n" "$p" "n$w" >/dev/null   # the prefix keeps N keys
	curl_batch DELETE "$PAR" "$LIMIT_SEQ" "$p" "c$w" >/dev/null
	s=$(curl_batch DELETE "$PAR" "$n" "$p" k);    echo "del_par=$(echo "$n / $s" | bc -l)"
	echo "seq_n=$LIMIT_SEQ par=$PAR writers=$WRITERS"
}

# ---- the report ------------------------------------------------------------------------------

report() {
	node - "$RESULTS" "$LIMITS_OUT" "$ROUNDS" "$CONFIGS" "$PAIRS" "$RESOURCE" <<'JS'
const fs = require('fs');
const [resFile, limFile, rounds, cfgList, pairFile, resource] = process.argv.slice(2);
// limits measured around s3dbfs's steps: pairs[`${n}|${step}|${round}`] = {before, after}
const pairs = {};
if (pairFile && fs.existsSync(pairFile))
	for (const line of fs.readFileSync(pairFile, 'utf8').split('\n').filter(Boolean)) {
		const [n, round, step, when, secs, server] = line.split('\t');
		const q = (pairs[`${n}|${step}|${round}`] ||= {});
		q[when] = +secs;
		if (server && server !== '-') q[`${when}_server`] = +server;
	}
const STEPS = ['create', 'ls-cold', 'ls-warm', 'cat-all', 'grep-r', 'rm-all', 'par-write', 'par-thread'];
// steps whose figure is a rate: the step's over the limit's, in %
const RATE = { 'par-write': 1, 'par-thread': 1 };
// the limits were measured twice per N (before and after its workloads):
// the best of the two is the limit (lowest latency, highest rate)
const runsOf = {}, limOf = {};
let setting = '';   // "# setting: ..." (placement, settle), when the run wrote one
if (fs.existsSync(limFile)) {
	let cur = null;
	for (const line of fs.readFileSync(limFile, 'utf8').split('\n')) {
		if (line.startsWith('# setting: ')) { setting = line.slice(11); continue; }
		const h = /^# (\w+) (\d+)/.exec(line);
		if (h) { cur = { when: h[1] }; (runsOf[h[2]] ||= []).push(cur); continue; }
		if (!cur) continue;
		for (const tok of line.split(/\s+/)) {
			const m = /^(\w+)=([0-9.eE+-]+)$/.exec(tok);
			if (m) cur[m[1]] = +m[2];
		}
	}
}
for (const [n, runs] of Object.entries(runsOf)) {
	const lim = limOf[n] = {};
	for (const r of runs) for (const [k, v] of Object.entries(r)) {
		if (k === 'when') continue;
		if (!(k in lim)) lim[k] = v;
		else if (/_seq$|^list_all$/.test(k)) lim[k] = Math.min(lim[k], v);
		else if (/_par$/.test(k)) lim[k] = Math.max(lim[k], v);
	}
}
let lim = {}, runs = [];
const rows = fs.readFileSync(resFile, 'utf8').split('\n').filter(Boolean).map(l => {
	const [n, cfg, round, step, secs, total, mix, errs, status, server] = l.split('\t');
	const by = {};
	for (const kv of (mix || '').split(' ')) { const m = /^(\w+)=(\d+)$/.exec(kv); if (m) by[m[1]] = +m[2]; }
	return { n: +n, cfg, round: +round, step, secs: +secs, total: +total, mix, errs, by, failed: status !== 'ok',
		server: server === undefined || server === '' ? null : +server };
});
// the median round of each (n, cfg, step); its requests are shown
const med = {};
for (const r of rows) (med[`${r.n}|${r.cfg}|${r.step}`] ||= []).push(r);
for (const k in med) { const a = med[k].sort((x, y) => x.secs - y.secs); med[k] = a[(a.length - 1) >> 1]; }
const get = (n, c, s) => med[`${n}|${c}|${s}`];
const cfgs = cfgList.split(/\s+/).filter(Boolean);
const ns = [...new Set(rows.map(r => r.n))];
const f = (x, d = 2) => x === undefined || isNaN(x) ? 'n/a' : x.toFixed(d);
const ratio = (a, b) => (a === undefined || b === undefined) ? 'n/a' : b === 0 ? (a === 0 ? '=' : 'inf') : (a / b).toFixed(2) + 'x';
const pad = (s, w) => String(s).padEnd(w);
const out = [];
const p = s => out.push(s);
if (setting) p(`${setting}\n`);

function printLimits(n) {
	p(`server limits on a prefix of ${n} keys (curl --aws-sigv4 through the front; best of ${runs.length} measurements):`);
	p(`  one at a time (${lim.seq_n} each): PUT ${f(lim.put_seq * 1e3)} ms  HEAD ${f(lim.head_seq * 1e3)} ms  GET ${f(lim.get_seq * 1e3)} ms  DELETE ${f(lim.del_seq * 1e3)} ms`);
	p(`  ${lim.par} in flight (${n} each): PUT ${f(lim.put_par, 0)}/s  HEAD ${f(lim.head_par, 0)}/s  GET ${f(lim.get_par, 0)}/s  DELETE ${f(lim.del_par, 0)}/s`);
	p(`  LIST of the ${n} keys: ${f(lim.list_all * 1e3, 1)} ms (${lim.list_pages} pages, ${f(lim.list_all * 1e3 / lim.list_pages, 1)} ms a page)`);
	if ('putnew_seq' in lim)
		p(`  PUT with If-None-Match: * (an insert; the front adds a HEAD to s3rver): ${f(lim.putnew_seq * 1e3)} ms one at a time, ${f(lim.putnew_par, 0)}/s ${lim.par} in flight`);
	const line = r => `${f(r.put_seq * 1e3)}/${f(r.head_seq * 1e3)}/${f(r.get_seq * 1e3)}/${f(r.del_seq * 1e3)} ms, ` +
		`${f(r.put_par, 0)}/${f(r.head_par, 0)}/${f(r.get_par, 0)}/${f(r.del_par, 0)} per s, LIST ${f(r.list_all * 1e3, 0)} ms`;
	if (runs.length > 1)
		for (const r of runs) p(`  (${pad(r.when, 6)}: PUT/HEAD/GET/DELETE ${line(r)})`);
}
// cost of a request of command c at the limits: one at a time, or in flight
const seqCost = { PutObject: 'put_seq', HeadObject: 'head_seq', GetObject: 'get_seq', DeleteObject: 'del_seq' };
const parRate = { PutObject: 'put_par', HeadObject: 'head_par', GetObject: 'get_par', DeleteObject: 'del_par' };
function priced(by, parallel) {
	let t = 0;
	for (const [c, k] of Object.entries(by)) {
		if (c === 'ListObjectsV2' || c === 'ListObjects') t += k * lim.list_all / lim.list_pages;
		else if (parallel) t += k / lim[parRate[c] || 'put_par'];
		else t += k * lim[seqCost[c] || 'put_seq'];
	}
	return t;
}
const PARALLEL = { 'ls-cold': 1, 'par-write': 1, 'par-thread': 1 };
// the request that reads a record: RESOURCE=free, the records have JSON
// bodies (one GET carries body and metadata); schema, the fields are in
// the metadata (one HEAD)
const read = resource === 'schema' ? { name: 'HEAD', par: 'head_par', seq: 'head_seq' }
	: { name: 'GET', par: 'get_par', seq: 'get_seq' };
// [limit seconds, ideal requests (text), target, ideal request count]
function ideal(step, n) {
	switch (step) {
	// an insert is a PUT with If-None-Match: * (priced as such when measured)
	case 'create': return 'putnew_seq' in lim
		? [n * lim.putnew_seq, `${n} PUT If-None-Match, one at a time`, '<= 1.3x', n]
		: [n * lim.put_seq, `${n} PUT one at a time`, '<= 1.3x', n];
	case 'ls-cold': return [lim.list_all + n / lim[read.par], `${lim.list_pages} LIST + ${n} ${read.name}, ${lim.par} in flight`, '<= 1.25x', lim.list_pages + n];
	case 'ls-warm': return [0, '0 requests', '0 requests', 0];
	case 'cat-all':
	case 'grep-r': return [n * lim[read.seq], `${n} ${read.name} one at a time`, '<= 1.25x', n];
	case 'rm-all': return [n * lim.del_seq, `${n} DELETE one at a time`, '<= 1.25x', n];
	case 'par-write':
	case 'par-thread': {
		const target = step === 'par-write' ? '>= 70% of the rate' : 'no target';
		return 'putnew_par' in lim
			? [n / lim.putnew_par, `${n} PUT If-None-Match, ${lim.par} in flight`, target, n]
			: [n / lim.put_par, `${n} PUT at ${lim.par} in flight`, target, n];
	}
	}
}

for (const n of ns) {
	lim = limOf[n] || {};
	runs = runsOf[n] || [];
	const haveLim = 'put_seq' in lim;
	p('');
	p(`== N = ${n} ==`);
	if (haveLim) printLimits(n);
	p(`seconds (S3 requests)${+rounds > 1 ? `, median of ${rounds} rounds` : ''}:`);
	const w = 24;
	p(pad('step', 11) + cfgs.map(c => pad(c, w)).join(''));
	for (const s of STEPS) {
		p(pad(s, 11) + cfgs.map(c => {
			const r = get(n, c, s);
			return pad(r ? `${f(r.secs, 3)} (${r.total})${r.failed ? '!' : ''}` : 'n/a', w);
		}).join(''));
	}
	p('requests by command (and those answered with a status >= 400, such as the 404 of a HEAD looking for a name):');
	for (const c of cfgs) for (const s of STEPS) {
		const r = get(n, c, s);
		if (r && (r.total > 0 || r.failed)) p(`  ${pad(c, 7)} ${pad(s, 11)} ${r.mix}${r.errs && r.errs !== '-' ? ' | >= 400: ' + r.errs : ''}${r.failed ? '   STEP FAILED' : ''}`);
	}
	if (!cfgs.includes('s3dbfs')) continue;
	if (!STEPS.some(s => get(n, 's3dbfs', s))) { p('s3dbfs: no figures (not built or did not mount)'); continue; }
	const peers = cfgs.filter(c => (c === 's3fs' || c === 'rclone') && STEPS.some(s => get(n, c, s)));
	if (peers.length) p('s3dbfs / peer (time, requests; below 1 = s3dbfs faster / fewer requests):');
	if (peers.length)
	p(pad('step', 11) + peers.map(c => pad(`vs ${c} time`, 16) + pad('requests', 12)).join(''));
	for (const s of STEPS) {
		const d = get(n, 's3dbfs', s);
		if (peers.length) p(pad(s, 11) + peers.map(c => {
			const q = get(n, c, s);
			return pad(ratio(d && d.secs, q && q.secs), 16) + pad(ratio(d && d.total, q && q.total), 12);
		}).join(''));
	}
	if (!haveLim) continue;
	p("s3dbfs / the server's limits (limit: what an ideal client's requests cost at the limits; " +
		'own: what the requests s3dbfs made cost there):');
	p(pad('step', 11) + pad('s3dbfs s', 10) + pad('requests', 10) + pad('per rec', 8) + pad('limit s', 9) + pad('ratio', 8) + pad('own s', 8) + pad('vs own', 8) + pad('target', 20) + 'ideal requests');
	for (const s of STEPS) {
		const d = get(n, 's3dbfs', s);
		if (!d) continue;
		const [t, what, target] = ideal(s, n);
		const reqs = pad(d.total, 10) + pad(f(d.total / n, 2), 8);
		let r;
		if (s === 'ls-warm') r = `${d.total} req`;
		else if (RATE[s]) r = `${f(100 * t / d.secs, 0)}%`;
		else r = ratio(d.secs, t);
		const own = priced(d.by, PARALLEL[s]);
		p(pad(s, 11) + pad(f(d.secs, 3), 10) + reqs + pad(f(t, 3), 9) + pad(r, 8) + pad(f(own, 3), 8) +
			pad(s === 'ls-warm' ? '' : own === 0 ? '0 req' : ratio(d.secs, own), 8) + pad(target, 20) + what);
	}
	// the same steps against the plain figures the issue names
	const dc = get(n, 's3dbfs', 'create'), dl = get(n, 's3dbfs', 'ls-cold'), dp = get(n, 's3dbfs', 'par-write');
	p('  against plain requests: ' + [
		dc && `create ${ratio(dc.secs, n * lim.put_seq)} of ${n} plain PUT one at a time`,
		dl && `ls-cold ${ratio(dl.secs, lim.list_all + n / lim.head_par)} of LIST + ${n} HEAD in flight`,
		dp && `par-write ${f(100 * (n / dp.secs) / lim.put_par, 0)}% of the plain PUT rate`,
	].filter(Boolean).join('; '));
	// each step against the limits measured just before and just after it:
	// per round, the step's time over the mean of its two; the round with
	// the median ratio is shown
	const paired = ['create', 'ls-cold', 'rm-all', 'par-write', 'par-thread'].map(s => {
		const all = rows.filter(r => r.n === n && r.cfg === 's3dbfs' && r.step === s).map(d => {
			const q = pairs[`${n}|${s}|${d.round}`];
			return q && 'before' in q && 'after' in q ? { s, d, q, t: (q.before + q.after) / 2 } : null;
		}).filter(Boolean).sort((x, y) => x.d.secs / x.t - y.d.secs / y.t);
		return all.length ? all[(all.length - 1) >> 1] : null;
	}).filter(Boolean);
	if (paired.length) {
		p("s3dbfs / the limits measured around each step (the step's ideal requests, curl just before and " +
			`just after it; the limit is the mean of the two${+rounds > 1 ? '; the round of the median ratio' : ''}; ` +
			"server s: the server's own time for the step's requests, summed from the front's log, for the steps " +
			'made one request at a time; s3dbfs/srv and curl/srv: the client\'s time over the server\'s, for the step ' +
			'and for the pairs):');
		p(pad('step', 11) + pad('round', 6) + pad('s3dbfs s', 10) + pad('before s', 10) + pad('after s', 10) + pad('limit s', 9) +
			pad('ratio', 8) + pad('vs best', 9) + pad('target', 20) + pad('server s', 10) + pad('s3dbfs/srv', 11) + 'curl/srv');
		for (const { s, d, q, t } of paired) {
			const [, , target] = ideal(s, n);
			const best = Math.min(q.before, q.after);
			const r = RATE[s] ? `${f(100 * t / d.secs, 0)}%` : ratio(d.secs, t);
			const rb = RATE[s] ? `${f(100 * best / d.secs, 0)}%` : ratio(d.secs, best);
			// one request at a time: the step's time over the server's own
			// time for its requests, beside the same for the curl pairs
			const seq = s === 'create' || s === 'rm-all';
			const srv = seq && d.server ? d.server : null;
			const curl = seq && q.before_server && q.after_server ?
				(q.before / q.before_server + q.after / q.after_server) / 2 : null;
			p(pad(s, 11) + pad(d.round, 6) + pad(f(d.secs, 3), 10) + pad(f(q.before, 3), 10) + pad(f(q.after, 3), 10) +
				pad(f(t, 3), 9) + pad(r, 8) + pad(rb, 9) + pad(target, 20) + pad(srv ? f(srv, 3) : '-', 10) +
				pad(srv ? ratio(d.secs, srv) : '-', 11) + (curl ? `${f(curl, 2)}x` : '-'));
		}
	}
	const cp = get(n, 'local', 'par-write'), ct = get(n, 'local', 'par-thread'), dt = get(n, 's3dbfs', 'par-thread');
	if (cp && dp)
		p(`  par-write floor (local cp, no S3): ${f(n / cp.secs, 0)} files/s; s3dbfs ${f(n / dp.secs, 0)} files/s`);
	if (ct && dt)
		p(`  par-thread floor (local, no S3): ${f(n / ct.secs, 0)} files/s; s3dbfs ${f(n / dt.secs, 0)} files/s`);
	const loc = get(n, 'local', 'ls-warm'), dw = get(n, 's3dbfs', 'ls-warm');
	if (loc && dw) p(`  ls-warm vs the local floor: ${ratio(dw.secs, loc.secs)}`);
}
console.log(out.join('\n'));
JS
}

# ---- the run ------------------------------------------------------------------------------------

say "fs_peers.sh: N = $NS, rounds $ROUNDS, configurations:$run_configs; s3dbfs resource: $RESOURCE; work dir $WORK"
say "  $(s3fs --version 2>/dev/null | head -n 1 | sed 's/ (commit.*//')"
say "  $(rclone version 2>/dev/null | head -n 1)"
if [[ " $run_configs " == *" s3dbfs "* ]]; then
	say "  s3dbfs: $S3DBFS ($(date -r "$S3DBFS" '+built %F %T'))"
	# a copy, so that a rebuild during the run changes nothing (a libtool
	# wrapper script cannot be copied: it is used where it is)
	if [ "$(head -c 4 "$S3DBFS" | od -An -c | tr -d ' ')" = '177ELF' ]; then
		cp "$S3DBFS" "$WORK/s3dbfs.pinned"
		S3DBFS=$WORK/s3dbfs.pinned
	fi
fi

make_records "$WORK" 1 && mv "$WORK/u000001.json" "$WORK/record.json"
stored_record || exit 1
say "  record size: $(wc -c <"$WORK/record.json") bytes; the limits' PUTs store $(wc -c <"$WORK/record.body") bytes of body and $(wc -l <"$WORK/record.meta") metadata headers ($(wc -c <"$WORK/record.meta") bytes)"
: >"$RESULTS"
settle_rule="settle before each timed series of writes: conditional PUTs in batches of $SETTLE_BATCH, at least $SETTLE, until a batch is within 15 % of the fastest (at most $SETTLE_MAX)"
[ "$SETTLE" -gt 0 ] || settle_rule="no settling"
echo "# setting: $PLACEMENT; $settle_rule" >"$LIMITS_OUT"
say "  $(sed 's/^# setting: //' "$LIMITS_OUT")"
: >"$PAIRS"

for n in $NS; do
	if [ "$LIMITS" = 1 ]; then
		say "measuring the server's limits on $n keys..."
		{ echo "# before $n"; measure_limits "$n" before; } >>"$LIMITS_OUT"
		# the paired limits need the N keys meanwhile (untimed)
		[ "$PAIRED" = 0 ] || curl_batch PUT "$PAR" "$n" "limits/n$n" k >/dev/null
	fi
	rm -rf "$WORK/src-$n"
	mkdir -p "$WORK/src-$n"
	make_records "$WORK/src-$n" "$n"
	for ((r = 1; r <= ROUNDS; r++)); do
		for c in $run_configs; do
			rm -rf "$WORK/local"
			run_workload "$c" "$n" "$r" || warn "$c N=$n round $r did not complete"
		done
	done
	rm -rf "$WORK/src-$n"
	if [ "$LIMITS" = 1 ]; then
		say "measuring the server's limits on $n keys again..."
		[ "$PAIRED" = 0 ] || curl_batch DELETE "$PAR" "$n" "limits/n$n" k >/dev/null
		{ echo "# after $n"; measure_limits "$n" after; } >>"$LIMITS_OUT"
	fi
done

say ""
say "$(date '+%F %T') raw lines: $RESULTS; limits: $LIMITS_OUT; paired: $PAIRS; settles: $SETTLE_LOG"
report
