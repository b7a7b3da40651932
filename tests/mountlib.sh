# mountlib.sh — what the atf-sh test programs that run s3dbfs and the s3db
# CLI share (t_mount, t_plugins, t_plugins_cm, t_plugins_cache, t_valgrind,
# t_cli): finding the built programs, a clean environment and a work
# directory, the two backends (file:// and the strict S3 front of
# tests/servers/servers.sh), mounting and waiting for the mount, unmounting
# and checking the daemon's exit status, a cleanup that never leaves a mount
# behind, polling (a condition, a log line, a JSON file), the front's
# request log, the webhook receiver's log, and ATF case declarations.
#
# POSIX sh, sourced by each test program:  . "$MOUNTLIB"  — the generated
# tests/t_* export MOUNTLIB (tests/Makefile.inc), so in-tree, out-of-tree
# and distcheck builds all read this file from the source tree.  Every
# function and global variable of this file starts with ml_ / ML_; the
# variables it sets for the test programs to use are upper case and named
# below.  A function documented as failing calls ml_fail, which ends the
# case (atf_fail) — never inside $(...), where it would only end a subshell.
#
# Variables the test programs set:
#   ML_S3_TAG         names the program in S3 prefixes (t/TAG-CASE-PID-NS)
#   ML_MOUNT_SECONDS  how long mounting or unmounting may take (default 10)
#   ML_EXIT_SECONDS   how long the daemon may take to exit (default 15)
#   ML_DETAIL         a command whose output is added to the messages about
#                     the daemon failing (t_valgrind: valgrind's log)
# Variables this file sets: WORK, MNT (ml_setup); CLI_C, DAEMON_C,
# DAEMON_OPTS, BACKEND, and for S3 PREFIX and PASSWD (ml_use_*); DAEMON_PID
# (ml_start, ml_mount); HOOK_URL, HOOK_PATH (ml_use_webhook); ML_CASES.
# Files it writes in the work directory: daemon.pids, DIR.log for a mount on
# DIR, unmount.err, wait.json (ml_wait_json), passwd (ml_use_s3).

# ---- failing, programs, environment -------------------------------------------

# ml_fail MESSAGE...: fails the case; newlines (from quoted logs) become
# " | ", since ATF wants a one-line reason.
ml_fail()
{
	atf_fail "$(printf '%s' "$*" | tr -s '\n' '|' | sed 's/|/ | /g')"
}

# ml_need_programs VAR...: each VAR (S3DBFS, S3DB_CLI, WEBHOOK_SO,
# ABI_FUTURE_SO, S3DBFS_CONTRIB or any path) comes from the environment or
# else the ATF configuration variable of that name, and is exported; fails
# when it does not name what it should (an executable, a file, contrib/).
ml_need_programs()
{
	for ml_v in "$@"; do
		eval "[ -n \"\${$ml_v:-}\" ] || $ml_v=\$(atf_config_get $ml_v '')"
		eval "ml_path=\$$ml_v"
		export "$ml_v"
		case $ml_v in
		S3DBFS) [ -x "$ml_path" ] ||
			ml_fail "S3DBFS='$ml_path' is not an executable (the built s3dbfs)" ;;
		S3DB_CLI) [ -x "$ml_path" ] ||
			ml_fail "S3DB_CLI='$ml_path' is not an executable (the built s3db)" ;;
		WEBHOOK_SO) [ -f "$ml_path" ] ||
			ml_fail "WEBHOOK_SO='$ml_path' is missing (make plugins/webhook/webhook.la)" ;;
		ABI_FUTURE_SO) [ -f "$ml_path" ] ||
			ml_fail "ABI_FUTURE_SO='$ml_path' is missing (make check builds it)" ;;
		S3DBFS_CONTRIB) [ -d "$ml_path" ] ||
			ml_fail "S3DBFS_CONTRIB='$ml_path' is not a directory (contrib/)" ;;
		*) [ -e "$ml_path" ] || ml_fail "$ml_v='$ml_path' does not exist" ;;
		esac
	done
}

# ml_need_env VAR...: fails unless each variable (of servers.sh's env) is set.
ml_need_env()
{
	for ml_v in "$@"; do
		eval "[ -n \"\${$ml_v:-}\" ]" ||
		    ml_fail "$ml_v is not set: start tests/servers/servers.sh and export its env"
	done
}

# ml_clean_env: unsets what would change the programs' behaviour behind the
# tests' back (passphrase, log level, webhook URL, AWS settings).
ml_clean_env()
{
	unset S3DB_PASSPHRASE S3DB_LOG_LEVEL S3DB_WEBHOOK_URL AWS_PROFILE AWS_ACCESS_KEY_ID \
	    AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_REGION AWS_ENDPOINT_URL
}

# ml_setup VAR...: ml_need_programs VAR..., ml_clean_env, then WORK (the
# case's work directory, the current one) and MNT ($WORK/mnt, made).
ml_setup()
{
	ml_need_programs "$@"
	ml_clean_env
	WORK=$(pwd)
	MNT=$WORK/mnt
	mkdir -p "$MNT"
}

# ml_mount_head TIMEOUT [PROG...]: the head of a mounting case: root,
# fusermount3, jq and the PROGs, TIMEOUT seconds.
ml_mount_head()
{
	ml_timeout=$1
	shift
	atf_set require.user root
	atf_set require.progs "fusermount3 jq $*"
	atf_set timeout "$ml_timeout"
}

# ---- backends ----------------------------------------------------------------------

# ml_use_local: the database is $WORK/db.  CLI_C is what the CLI opens,
# DAEMON_C what the daemon mounts, DAEMON_OPTS its -o options.
ml_use_local()
{
	CLI_C="file://$WORK/db"
	DAEMON_C=$CLI_C
	DAEMON_OPTS=log_level=info
	BACKEND=local
}

# ml_use_s3: a fresh PREFIX of the test bucket, through the strict front
# (fails without servers.sh's S3DB_TEST_* variables).  The daemon takes its
# credentials from PASSWD ($WORK/passwd, mode 0600, named in DAEMON_OPTS);
# CLI_C, for the CLI, holds them, the secret percent-encoded.
ml_use_s3()
{
	ml_need_env S3DB_TEST_S3_URL S3DB_TEST_S3_BUCKET S3DB_TEST_ACCESS_KEY S3DB_TEST_SECRET_KEY
	PREFIX="t/${ML_S3_TAG:-mountlib}-$(atf_get ident)-$$-$(date +%s%N)"
	ml_hostport=${S3DB_TEST_S3_URL#http://}
	ml_enc=$(jq -rn --arg s "$S3DB_TEST_SECRET_KEY" '$s | @uri')
	CLI_C="http://$S3DB_TEST_ACCESS_KEY:$ml_enc@$ml_hostport/$S3DB_TEST_S3_BUCKET/$PREFIX"
	DAEMON_C="http://$ml_hostport/$S3DB_TEST_S3_BUCKET/$PREFIX"
	PASSWD=$WORK/passwd
	ml_write_private "$PASSWD" "$S3DB_TEST_ACCESS_KEY:$S3DB_TEST_SECRET_KEY"
	DAEMON_OPTS="log_level=info,passwd_file=$PASSWD"
	BACKEND=s3
}

# ml_cli ARGS...: the s3db CLI on the test database ($CLI_C).
ml_cli()
{
	"$S3DB_CLI" "$CLI_C" "$@"
}

# ml_jq_true FILE FILTER: fails unless the jq FILTER is true for FILE.
ml_jq_true()
{
	jq -e "$2" "$1" >/dev/null 2>&1 || ml_fail "$1: jq '$2' is not true: $(head -c 800 "$1")"
}

# ml_write_private FILE TEXT: FILE holds TEXT and a newline, mode 0600,
# written to FILE.tmp and renamed, as editors save.
ml_write_private()
{
	(umask 077 && printf '%s\n' "$2" >"$1.tmp") && mv "$1.tmp" "$1" ||
	    ml_fail "cannot write $1"
}

# ---- polling ---------------------------------------------------------------------------

# ml_wait_until SECONDS COMMAND...: runs COMMAND every 0.1 s until it
# succeeds (status 0) or SECONDS (a whole number) have passed (status 1);
# the caller says what failed, with the state of that moment.
ml_wait_until()
{
	ml_tries=$(($1 * 10))
	shift
	until "$@"; do
		ml_tries=$((ml_tries - 1))
		[ "$ml_tries" -gt 0 ] || return 1
		sleep 0.1
	done
}

# ml_wait_log FILE ERE [SECONDS]: waits (default 10 s) until a line of FILE
# matches the extended regular expression ERE; fails after.
ml_wait_log()
{
	ml_wait_until "${3:-10}" grep -Eq -- "$2" "$1" ||
	    ml_fail "no line matching '$2' in $1 after ${3:-10} s: $(tail -n 15 "$1" 2>/dev/null)"
}

# ml_json_is FILE FILTER: FILE (a virtual file, read once into ./wait.json)
# satisfies the jq FILTER.
ml_json_is()
{
	cat "$1" >wait.json 2>/dev/null && jq -e "$2" wait.json >/dev/null 2>&1
}

# ml_wait_json FILE FILTER [SECONDS]: waits (default 10 s) until FILE
# satisfies FILTER; ./wait.json then holds the text that did.  Fails after.
# (The daemon keeps a virtual file's text made at stat for the open that
# follows within a second: a read may show a slightly older state.)
ml_wait_json()
{
	ml_wait_until "${3:-10}" ml_json_is "$1" "$2" ||
	    ml_fail "$1 does not satisfy '$2' after ${3:-10} s: $(head -c 800 wait.json)"
}

# ---- mounting --------------------------------------------------------------------------

# ml_is_mounted DIR: DIR is an s3dbfs mount point.
ml_is_mounted()
{
	awk -v m="$1" '$2 == m && $3 == "fuse.s3dbfs" { f = 1 } END { exit !f }' /proc/mounts
}

# ml_daemon_log DIR: the end of the daemon's log DIR.log, and the output of
# $ML_DETAIL when set: for failure messages.
ml_daemon_log()
{
	tail -n 20 "$1.log" 2>/dev/null
	[ -z "${ML_DETAIL:-}" ] || printf ' | %s' "$($ML_DETAIL)"
}

# ml_wait_mounted DIR PID: waits (ML_MOUNT_SECONDS) until DIR is mounted;
# fails when the process PID exits first, or after.
ml_wait_mounted()
{
	ml_tries=$((${ML_MOUNT_SECONDS:-10} * 10))
	while ! ml_is_mounted "$1"; do
		kill -0 "$2" 2>/dev/null ||
		    ml_fail "s3dbfs exited before mounting $1: $(ml_daemon_log "$1")"
		ml_tries=$((ml_tries - 1))
		[ "$ml_tries" -gt 0 ] ||
		    ml_fail "$1 not mounted after ${ML_MOUNT_SECONDS:-10} s: $(ml_daemon_log "$1")"
		sleep 0.1
	done
}

# ml_start DIR COMMAND...: runs COMMAND (a daemon in the foreground that
# mounts DIR) in the background, its output appended to DIR.log, its pid in
# DAEMON_PID and appended to $WORK/daemon.pids (for ml_cleanup); waits for
# the mount (ml_wait_mounted).
ml_start()
{
	ml_dir=$1
	shift
	"$@" >>"$ml_dir.log" 2>&1 &
	DAEMON_PID=$!
	echo "$DAEMON_PID" >>"$WORK/daemon.pids"
	ml_wait_mounted "$ml_dir" "$DAEMON_PID"
}

# ml_mount DIR [ARGS...]: s3dbfs in the foreground mounting $DAEMON_C on DIR
# (made) with -o $DAEMON_OPTS and ARGS, as ml_start.
ml_mount()
{
	ml_dir=$1
	shift
	mkdir -p "$ml_dir"
	ml_start "$ml_dir" "$S3DBFS" "$DAEMON_C" "$ml_dir" -f ${DAEMON_OPTS:+-o "$DAEMON_OPTS"} "$@"
}

# ml_is_gone PID: no process PID runs.
ml_is_gone()
{
	! kill -0 "$1" 2>/dev/null
}

# ml_wait_gone PID [SECONDS]: waits (default ML_EXIT_SECONDS) for the
# process PID to exit; fails after.
ml_wait_gone()
{
	ml_secs=${2:-${ML_EXIT_SECONDS:-15}}
	ml_wait_until "$ml_secs" ml_is_gone "$1" ||
	    ml_fail "process $1 still runs after $ml_secs s${ML_DETAIL:+: $($ML_DETAIL)}"
}

# ml_daemon_exits PID STATUS [DIR]: waits for the daemon PID (a child of
# this shell) to exit and fails unless its status is STATUS; STATUS
# "detached" (a daemon that forked away: no status to read) only waits.
# DIR (default $MNT) names the log quoted on failure.
ml_daemon_exits()
{
	ml_wait_gone "$1"
	[ "$2" != detached ] || return 0
	wait "$1" 2>/dev/null
	ml_status=$?
	[ "$ml_status" -eq "$2" ] ||
	    ml_fail "s3dbfs (pid $1) exited $ml_status (expected $2): $(ml_daemon_log "${3:-$MNT}")"
}

# ml_unmount DIR PID [STATUS]: fusermount3 -u DIR, retried while busy
# (ML_MOUNT_SECONDS), then ml_daemon_exits PID STATUS (default 0; under the
# sanitizers a leak at exit makes it non-zero).
ml_unmount()
{
	ml_tries=$((${ML_MOUNT_SECONDS:-10} * 10))
	while ml_is_mounted "$1"; do
		fusermount3 -u "$1" 2>unmount.err && break
		ml_tries=$((ml_tries - 1))
		[ "$ml_tries" -gt 0 ] || ml_fail "cannot unmount $1: $(cat unmount.err)"
		sleep 0.1
	done
	ml_daemon_exits "$2" "${3:-0}" "$1"
}

# ml_unmount_all_here: lazily unmounts every mount under the current
# directory, stacked ones included (a dead mount fails stat(), so
# /proc/mounts is read rather than testing the directories).
ml_unmount_all_here()
{
	for ml_round in 1 2 3 4 5; do
		ml_mps=$(awk -v p="$(pwd)/" 'index($2, p) == 1 { print $2 }' /proc/mounts)
		[ -n "$ml_mps" ] || return 0
		for ml_m in $ml_mps; do
			fusermount3 -uz "$ml_m" 2>/dev/null
		done
	done
}

# ml_cleanup: the ATF cleanup of every mounting case: unmounts everything
# under the work directory, ends the daemons of ./daemon.pids (TERM, then
# KILL half a second later), unmounts again.  Never fails.
ml_cleanup()
{
	ml_unmount_all_here
	if [ -f daemon.pids ]; then
		for ml_p in $(cat daemon.pids); do
			kill -TERM "$ml_p" 2>/dev/null
		done
		sleep 0.5
		for ml_p in $(cat daemon.pids); do
			kill -KILL "$ml_p" 2>/dev/null
		done
	fi
	ml_unmount_all_here
	return 0
}

# ---- the servers' logs -------------------------------------------------------------------

# ml_front_log_clear: empties the strict front's request log.
ml_front_log_clear()
{
	curl -sf -X DELETE "$S3DB_TEST_S3_URL/__control/log" >/dev/null ||
	    ml_fail "cannot clear the front's log"
}

# ml_front_log FILE [KEY_PREFIX]: the front's request log (a JSON array of
# {command, key, ...}) into FILE; with KEY_PREFIX only the requests whose
# key starts with it.
ml_front_log()
{
	curl -sf "$S3DB_TEST_S3_URL/__control/log" >"$1.all" || ml_fail "cannot read the front's log"
	jq --arg p "${2:-}" '[.[] | select((.key // "") | startswith($p))]' "$1.all" >"$1" ||
	    ml_fail "the front's log is not JSON: $(head -c 300 "$1.all")"
}

# ml_use_webhook: HOOK_URL, the webhook receiver's URL with a path of this
# case's own (so that cases never read each other's deliveries), and
# HOOK_PATH, that path; fails without servers.sh's webhook variables.
ml_use_webhook()
{
	ml_need_env S3DB_TEST_WEBHOOK_URL S3DB_TEST_WEBHOOK_LOG
	HOOK_URL="$S3DB_TEST_WEBHOOK_URL/$(atf_get ident)-$$"
	HOOK_PATH="/${HOOK_URL#http://*/}"
}

# ml_webhook_received FILE: the bodies HOOK_PATH received and answered
# 2xx, as a JSON array in arrival order, into FILE.
ml_webhook_received()
{
	jq -s --arg p "$HOOK_PATH" '[.[] | select(.path == $p and .status < 300) | .body]' \
	    "$S3DB_TEST_WEBHOOK_LOG" >"$1" || ml_fail "cannot read $S3DB_TEST_WEBHOOK_LOG"
}

# ---- case declarations ----------------------------------------------------------------------

# ml_case NAME BODY: an ATF case NAME with a cleanup: its head runs the
# program's common_head, its body the commands BODY (a string without
# quotes), its cleanup ml_cleanup.  NAME is added to ML_CASES.
ml_case()
{
	eval "atf_test_case $1 cleanup
$1_head() { common_head; }
$1_body() { $2; }
$1_cleanup() { ml_cleanup; }"
	ML_CASES="${ML_CASES:-} $1"
}

# ml_one NAME BACKEND: a case NAME running the program's setup, then
# ml_use_BACKEND (local or s3), then do_NAME.
ml_one()
{
	ml_case "$1" "setup; ml_use_$2; do_$1"
}

# ml_both NAME: two cases running do_NAME, NAME on the local backend and
# NAME_s3 through S3.
ml_both()
{
	ml_one "$1" local
	ml_case "$1_s3" "setup; ml_use_s3; do_$1"
}

# ml_add_cases: atf_add_test_case for every case of ML_CASES (call it from
# atf_init_test_cases).
ml_add_cases()
{
	for ml_c in ${ML_CASES:-}; do
		atf_add_test_case "$ml_c"
	done
}
