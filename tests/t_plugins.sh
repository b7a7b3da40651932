#! /usr/bin/env atf-sh
#
# t_plugins.sh — plugins in the s3dbfs daemon and the s3db CLI, end to
# end, with the example plugin plugins/webhook (a .so loaded with
# -o plugin=PATH or from the config file) against the webhook receiver of
# tests/servers/servers.sh (tests/servers/webhook.js):
#   - writes made through the mount with tee, sed -i and rm reach the
#     receiver as insert / update / delete with the writer's process name;
#   - /.webhook shows the plugin's counters;
#   - the plugin's thread runs while mounted and is joined, and the .so
#     unloaded, at unmount (fusermount3 -u or SIGTERM), after the events
#     of the last writes were sent;
#   - the config file's options filter events and resources, a failed
#     POST is retried, a full queue drops (counted) without slowing
#     writes, and options changed in the watched file apply live;
#   - a missing .so, a file that is no shared object and a plugin built
#     for another ABI version refuse the mount with a clear message;
#   - CLI writes go through the plugins of --config / --plugin.
#
# Mount cases run on the local backend (file://) and, suffix _s3, through
# the strict S3 front.  Programs and objects: $S3DBFS, $S3DB_CLI,
# $WEBHOOK_SO, $ABI_FUTURE_SO, exported by the generated tests/t_plugins.
# The S3DB_TEST_* variables of servers.sh must be set (the cases fail
# without them).  Mounting needs root; every mounting case unmounts in
# its cleanup.

# ---- set-up ---------------------------------------------------------------------

fail()
{
	atf_fail "$(printf '%s' "$*" | tr -s '\n' '|' | sed 's/|/ | /g')"
}

common_head()
{
	atf_set require.user root
	atf_set require.progs "fusermount3 jq curl"
	atf_set timeout 120
}

setup()
{
	for v in S3DBFS S3DB_CLI WEBHOOK_SO ABI_FUTURE_SO; do
		eval "[ -n \"\${$v:-}\" ] || $v=\$(atf_config_get $v '')"
	done
	[ -x "$S3DBFS" ] || fail "S3DBFS='$S3DBFS' is not an executable (the built s3dbfs)"
	[ -x "$S3DB_CLI" ] || fail "S3DB_CLI='$S3DB_CLI' is not an executable (the built s3db)"
	[ -f "$WEBHOOK_SO" ] || fail "WEBHOOK_SO='$WEBHOOK_SO' is missing (make plugins/webhook/webhook.la)"
	[ -f "$ABI_FUTURE_SO" ] || fail "ABI_FUTURE_SO='$ABI_FUTURE_SO' is missing (make check builds it)"
	for v in S3DB_TEST_WEBHOOK_URL S3DB_TEST_WEBHOOK_CONTROL S3DB_TEST_WEBHOOK_LOG; do
		eval "[ -n \"\${$v:-}\" ]" ||
		    fail "$v is not set: start tests/servers/servers.sh and export its env"
	done
	unset S3DB_PASSPHRASE S3DB_LOG_LEVEL S3DB_WEBHOOK_URL AWS_PROFILE AWS_ACCESS_KEY_ID \
	    AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_REGION AWS_ENDPOINT_URL
	WORK=$(pwd)
	MNT=$WORK/mnt
	mkdir -p "$MNT"
	control DELETE log
	# each case posts to its own path, so that cases never read each
	# other's deliveries
	HOOK_URL="$S3DB_TEST_WEBHOOK_URL/$(atf_get ident)-$$"
	HOOK_PATH="/${HOOK_URL#http://*/}"
}

use_local()
{
	CLI_C="file://$WORK/db"
	DAEMON_C=$CLI_C
	DAEMON_OPTS=log_level=info
}

use_s3()
{
	for v in S3DB_TEST_S3_URL S3DB_TEST_S3_BUCKET S3DB_TEST_ACCESS_KEY S3DB_TEST_SECRET_KEY; do
		eval "[ -n \"\${$v:-}\" ]" ||
		    fail "$v is not set: start tests/servers/servers.sh and export its env"
	done
	PREFIX="t/plugins-$(atf_get ident)-$$-$(date +%s%N)"
	hostport=${S3DB_TEST_S3_URL#http://}
	enc=$(jq -rn --arg s "$S3DB_TEST_SECRET_KEY" '$s | @uri')
	CLI_C="http://$S3DB_TEST_ACCESS_KEY:$enc@$hostport/$S3DB_TEST_S3_BUCKET/$PREFIX"
	DAEMON_C="http://$hostport/$S3DB_TEST_S3_BUCKET/$PREFIX"
	(umask 077 && printf '%s:%s\n' "$S3DB_TEST_ACCESS_KEY" "$S3DB_TEST_SECRET_KEY" >"$WORK/passwd")
	DAEMON_OPTS="log_level=info,passwd_file=$WORK/passwd"
}

# control METHOD WHAT [JSON]: the receiver's control API.
control()
{
	curl -sf -X "$1" ${3:+-H 'Content-Type: application/json' -d "$3"} \
	    "$S3DB_TEST_WEBHOOK_CONTROL/$2" >/dev/null || fail "webhook receiver: $1 $2 failed"
}

cli()
{
	"$S3DB_CLI" "$CLI_C" "$@"
}

# seed: resources users and notes, through the CLI (no plugin).
seed()
{
	echo '{"attributes":{"name":"string|required"},"timestamps":false}' >def.json
	cli schema users <def.json >/dev/null 2>seed.err || fail "schema users: $(cat seed.err)"
	cli schema notes <def.json >/dev/null 2>seed.err || fail "schema notes: $(cat seed.err)"
}

# received: the bodies this case's path received (answered 2xx), as a
# JSON array in arrival order, into received.json.
received()
{
	jq -s --arg p "$HOOK_PATH" '[.[] | select(.path == $p and .status < 300) | .body]' \
	    "$S3DB_TEST_WEBHOOK_LOG" >received.json || fail "cannot read $S3DB_TEST_WEBHOOK_LOG"
}

# wait_received N [SECONDS]: waits until N bodies arrived.
wait_received()
{
	i=0
	limit=$(( ${2:-10} * 10 ))
	while :; do
		received
		[ "$(jq length received.json)" -ge "$1" ] && return 0
		i=$((i + 1))
		[ $i -le $limit ] || fail "$(jq length received.json) of $1 webhook calls after ${2:-10} s: $(head -c 800 received.json)"
		sleep 0.1
	done
}

jqtrue()
{
	jq -e "$2" "$1" >/dev/null 2>&1 || fail "$1: jq '$2' is not true: $(head -c 800 "$1")"
}

# ---- mounting ---------------------------------------------------------------------

is_mounted()
{
	awk -v m="$1" '$2 == m && $3 == "fuse.s3dbfs" { f = 1 } END { exit !f }' /proc/mounts
}

# mount_at DIR [ARGS...]: the daemon in the foreground on DIR (log in
# DIR.log, pid in $DAEMON_PID and ./daemon.pids); waits for the mount.
mount_at()
{
	dir=$1
	shift
	"$S3DBFS" "$DAEMON_C" "$dir" -f ${DAEMON_OPTS:+-o "$DAEMON_OPTS"} "$@" >>"$dir.log" 2>&1 &
	DAEMON_PID=$!
	echo "$DAEMON_PID" >>"$WORK/daemon.pids"
	i=0
	while ! is_mounted "$dir"; do
		kill -0 "$DAEMON_PID" 2>/dev/null ||
		    fail "s3dbfs exited before mounting $dir: $(tail -n 20 "$dir.log")"
		i=$((i + 1))
		[ $i -le 100 ] || fail "$dir not mounted after 10 s: $(tail -n 20 "$dir.log")"
		sleep 0.1
	done
}

# daemon_exits PID STATUS: waits (15 s) for our child to exit with STATUS.
daemon_exits()
{
	i=0
	while kill -0 "$1" 2>/dev/null; do
		i=$((i + 1))
		[ $i -le 150 ] || fail "s3dbfs $1 still runs 15 s after unmount"
		sleep 0.1
	done
	wait "$1" 2>/dev/null
	st=$?
	[ $st -eq "$2" ] || fail "s3dbfs exited $st (expected $2): $(tail -n 20 "$MNT.log")"
}

unmount()
{
	fusermount3 -u "$1" 2>unmount.err || fail "cannot unmount $1: $(cat unmount.err)"
	daemon_exits "$2" 0
}

cleanup_mounts()
{
	for m in $(awk -v p="$(pwd)/" 'index($2, p) == 1 { print $2 }' /proc/mounts); do
		fusermount3 -uz "$m" 2>/dev/null
	done
	if [ -f daemon.pids ]; then
		for p in $(cat daemon.pids); do kill -KILL "$p" 2>/dev/null; done
	fi
	return 0
}

both()
{
	eval "atf_test_case $1 cleanup
$1_head() { common_head; }
$1_body() { setup; use_local; do_$1; }
$1_cleanup() { cleanup_mounts; }
atf_test_case $1_s3 cleanup
$1_s3_head() { common_head; }
$1_s3_body() { setup; use_s3; do_$1; }
$1_s3_cleanup() { cleanup_mounts; }"
	CASES="$CASES $1 $1_s3"
}

one()
{
	eval "atf_test_case $1 cleanup
$1_head() { common_head; }
$1_body() { setup; use_$2; do_$1; }
$1_cleanup() { cleanup_mounts; }"
	CASES="$CASES $1"
}

CASES=

# config FILE OPTIONS_JSON: a config file loading the webhook .so with
# those options (webhookUrl added).
config()
{
	jq -n --arg so "$WEBHOOK_SO" --arg url "$HOOK_URL" --argjson o "$2" \
	    '{plugins: [{path: $so, options: ({webhookUrl: $url} + $o)}]}' >"$1"
}

# ---- the cases ----------------------------------------------------------------------

do_writes_through_the_mount_reach_the_webhook_with_the_process_names()
{
	seed
	# -o plugin=PATH gives no options: the URL comes from the environment
	export S3DB_WEBHOOK_URL="$HOOK_URL"
	mount_at "$MNT" -o "plugin=$WEBHOOK_SO"
	unset S3DB_WEBHOOK_URL
	# the plugin's thread runs, its .so is mapped, its file is listed
	grep -qx webhook /proc/$DAEMON_PID/task/*/comm ||
	    fail "no thread named webhook in the daemon: $(cat /proc/$DAEMON_PID/task/*/comm | tr '\n' ' ')"
	grep -q "$WEBHOOK_SO" /proc/$DAEMON_PID/maps || fail "webhook.so is not mapped in the daemon"
	atf_check -o match:'^\.webhook$' ls -a "$MNT"

	echo '{"name":"Carl"}' | tee "$MNT/users/carl.json" >/dev/null
	sed -i 's/Carl/Carla/' "$MNT/users/carl.json"
	rm "$MNT/users/carl.json"
	wait_received 3
	jqtrue received.json 'length == 3'
	jqtrue received.json '[.[].event] == ["insert", "update", "delete"]'
	jqtrue received.json '[.[].user.process] == ["tee", "sed", "rm"]'
	jqtrue received.json 'all(.[]; .resource == "users" and .id == "carl" and .user.uid == 0
	    and .user.gid == 0 and .user.pid > 0 and (.timestamp | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$")))'
	jqtrue received.json '.[0].data == {"id": "carl", "name": "Carl"}'
	jqtrue received.json '.[1].data == {"id": "carl", "name": "Carla"}'
	jqtrue received.json '.[2].data.name == "Carla"'
	jq -s --arg p "$HOOK_PATH" '[.[] | select(.path == $p)][0]' "$S3DB_TEST_WEBHOOK_LOG" >first.json
	jqtrue first.json '.contentType == "application/json" and (.userAgent | startswith("s3dbfs-webhook/"))'

	cp "$MNT/.webhook" counters.json
	jqtrue counters.json '.sent == 3 and .failed == 0 and .dropped == 0 and .queued == 0'
	# reading a record is not among the default events
	cli get users carl >/dev/null 2>&1
	echo '{"name":"Dora"}' | cli put users dora >/dev/null
	cat "$MNT/users/dora.json" >/dev/null
	sleep 0.5
	received
	jqtrue received.json 'length == 3'

	unmount "$MNT" "$DAEMON_PID"
	grep -q 'plugin webhook: stopped (1 thread joined), shared object unloaded' "$MNT.log" ||
	    fail "no clean stop in the log: $(tail -n 8 "$MNT.log")"
	! grep -Eq 'error|unloading failed' "$MNT.log" || fail "errors in the log: $(grep -E 'error|unloading failed' "$MNT.log")"
	# the URL is never logged
	! grep -q "$HOOK_PATH" "$MNT.log" || fail "the webhook URL is in the log"
}
both writes_through_the_mount_reach_the_webhook_with_the_process_names

do_sigterm_sends_the_last_writes_events_before_unloading()
{
	seed
	config cfg.json '{}'
	# slow answers: events wait in the queue when SIGTERM comes
	control POST delay '{"ms": 300}'
	mount_at "$MNT" -o "config=$WORK/cfg.json"
	for n in a b c d; do
		echo "{\"name\":\"$n\"}" >"$MNT/notes/$n.json"
	done
	kill -TERM "$DAEMON_PID"
	daemon_exits "$DAEMON_PID" 0
	received
	jqtrue received.json 'length == 4 and ([.[].id] | sort) == ["a", "b", "c", "d"]'
	jqtrue received.json 'all(.[]; .event == "insert" and .resource == "notes")'
	grep -q 'plugin webhook: stopped (1 thread joined), shared object unloaded' "$MNT.log" ||
	    fail "no clean stop in the log: $(tail -n 8 "$MNT.log")"
	control POST delay '{"ms": 0}'
}
one sigterm_sends_the_last_writes_events_before_unloading local

do_config_options_filter_retry_and_change_live()
{
	seed
	config cfg.json '{"events": ["delete"], "resources": ["users"], "retries": 2}'
	mount_at "$MNT" -o "config=$WORK/cfg.json"
	echo '{"name":"Eve"}' >"$MNT/users/eve.json"      # not an event asked for
	echo '{"name":"n1"}' >"$MNT/notes/n1.json"
	rm "$MNT/notes/n1.json"                           # not a resource asked for
	control POST respond '{"status": 500, "count": 1}' # first attempt fails
	rm "$MNT/users/eve.json"
	wait_received 1
	sleep 0.5
	received
	jqtrue received.json 'length == 1 and .[0].event == "delete" and .[0].id == "eve"'
	jqtrue received.json '.[0].user.process == "rm"'
	cp "$MNT/.webhook" counters.json
	jqtrue counters.json '.sent == 1 and .retried == 1 and .failed == 0'

	# options changed in the watched file apply without a remount
	config cfg.json '{"events": ["insert", "delete"], "resources": ["users"]}'
	i=0
	until grep -q 'plugins\[0\] .* options changed: events.*applied' "$MNT.log"; do
		i=$((i + 1))
		[ $i -le 100 ] || fail "the change was not applied: $(tail -n 5 "$MNT.log")"
		sleep 0.1
	done
	echo '{"name":"Fay"}' >"$MNT/users/fay.json"
	wait_received 2
	jqtrue received.json '.[1].event == "insert" and .[1].id == "fay"'
	# a change the plugin refuses keeps the running options
	config cfg.json '{"events": ["nonsense"]}'
	i=0
	until grep -q 'refused (webhook: events\[0\]: must be one of' "$MNT.log"; do
		i=$((i + 1))
		[ $i -le 100 ] || fail "no refusal in the log: $(tail -n 5 "$MNT.log")"
		sleep 0.1
	done
	rm "$MNT/users/fay.json"
	wait_received 3
	jqtrue received.json '.[2].event == "delete" and .[2].id == "fay"'
	unmount "$MNT" "$DAEMON_PID"
}
both config_options_filter_retry_and_change_live

do_a_full_queue_drops_events_without_slowing_writes()
{
	seed
	config cfg.json '{"queueSize": 2, "timeout": 10000}'
	control POST delay '{"ms": 1500}'
	mount_at "$MNT" -o "config=$WORK/cfg.json"
	start=$(date +%s%N)
	for n in 1 2 3 4 5 6 7 8; do
		echo "{\"name\":\"n$n\"}" >"$MNT/notes/n$n.json"
	done
	took=$(( ($(date +%s%N) - start) / 1000000 ))
	# eight writes while the receiver takes 1.5 s per call: the FUSE
	# threads never wait for it
	[ "$took" -lt 1500 ] || fail "8 writes took $took ms with a slow webhook"
	cp "$MNT/.webhook" counters.json
	jqtrue counters.json '.dropped >= 5 and .queued <= 2'
	grep -q 'plugin webhook: queue full (2 waiting): 1 event(s) dropped so far' "$MNT.log" ||
	    fail "the first drop is not logged: $(tail -n 5 "$MNT.log")"
	control POST delay '{"ms": 0}'
	unmount "$MNT" "$DAEMON_PID"
	received
	dropped=$(jq .dropped counters.json)
	jqtrue received.json "length == 8 - $dropped"
}
one a_full_queue_drops_events_without_slowing_writes local

do_a_broken_plugin_refuses_the_mount_clearly()
{
	seed
	# a path that does not exist: the options parser says so
	atf_check -s exit:2 -o empty -e match:'-o plugin: .*/missing\.so: No such file or directory' \
	    "$S3DBFS" "$DAEMON_C" "$MNT" -f -o "$DAEMON_OPTS,plugin=$WORK/missing.so"
	# a file that is no shared object
	echo 'not ELF' >broken.so
	atf_check -s exit:2 -o empty -e match:"-o plugin: cannot load plugin: .*broken\.so: (invalid ELF header|file too short)" \
	    "$S3DBFS" "$DAEMON_C" "$MNT" -f -o "$DAEMON_OPTS,plugin=$WORK/broken.so"
	# a plugin built for the next ABI version: refused before its setup
	atf_check -s exit:2 -o empty \
	    -e match:"plugin 'AbiFuture' was built for plugin ABI version 2, but this s3dbfs has ABI version 1" \
	    "$S3DBFS" "$DAEMON_C" "$MNT" -f -o "$DAEMON_OPTS,plugin=$ABI_FUTURE_SO"
	# the webhook without its URL
	atf_check -s exit:2 -o empty -e match:'webhook: webhookUrl: required' \
	    "$S3DBFS" "$DAEMON_C" "$MNT" -f -o "$DAEMON_OPTS,plugin=$WEBHOOK_SO"
	# a guide plugin that this build lacks
	echo '{"plugins": ["AuditPlugin"]}' >audit.json
	atf_check -s exit:2 -o empty -e match:'AuditPlugin: not available in this build' \
	    "$S3DBFS" "$DAEMON_C" "$MNT" -f -o "$DAEMON_OPTS,config=$WORK/audit.json"
	is_mounted "$MNT" && fail "$MNT is mounted after a refused plugin"
	return 0
}
both a_broken_plugin_refuses_the_mount_clearly

do_cli_writes_go_through_the_configured_plugins()
{
	seed
	config cfg.json '{}'
	atf_check -o ignore "$S3DB_CLI" --config cfg.json "$CLI_C" put users gil <<EOF
{"name":"Gil"}
EOF
	wait_received 1 5
	jqtrue received.json '.[0].event == "insert" and .[0].id == "gil" and .[0].user.process == "s3db"'
	# --plugin PATH (the URL from the environment) and a config file
	# giving the connection string
	jq --arg c "$CLI_C" '{connectionString: $c}' /dev/null -n >conn.json
	chmod 600 conn.json
	atf_check -o ignore env S3DB_WEBHOOK_URL="$HOOK_URL" \
	    "$S3DB_CLI" --config conn.json --plugin "$WEBHOOK_SO" rm users gil
	wait_received 2 5
	jqtrue received.json '.[1].event == "delete" and .[1].id == "gil"'
	atf_check -s exit:2 -e match:'AuditPlugin: not available in this build' \
	    "$S3DB_CLI" --plugin AuditPlugin "$CLI_C" resources
}
both cli_writes_go_through_the_configured_plugins

atf_init_test_cases()
{
	for c in $CASES; do
		atf_add_test_case "$c"
	done
}
