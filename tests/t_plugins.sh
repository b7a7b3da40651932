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
# its cleanup.  The helpers named ml_* are tests/mountlib.sh's ($MOUNTLIB,
# exported by the generated tests/t_plugins too).

. "${MOUNTLIB:?MOUNTLIB must name tests/mountlib.sh (the generated tests/t_plugins exports it)}"
ML_S3_TAG=plugins

# ---- set-up ---------------------------------------------------------------------

common_head()
{
	ml_mount_head 120 curl
}

# setup: the programs, the receiver (its log emptied), this case's HOOK_URL.
setup()
{
	ml_setup S3DBFS S3DB_CLI WEBHOOK_SO ABI_FUTURE_SO
	ml_need_env S3DB_TEST_WEBHOOK_CONTROL
	ml_use_webhook
	control DELETE log
}

# control METHOD WHAT [JSON]: the receiver's control API.
control()
{
	curl -sf -X "$1" ${3:+-H 'Content-Type: application/json' -d "$3"} \
	    "$S3DB_TEST_WEBHOOK_CONTROL/$2" >/dev/null || ml_fail "webhook receiver: $1 $2 failed"
}

# seed: resources users and notes, through the CLI (no plugin).
seed()
{
	echo '{"attributes":{"name":"string|required"},"timestamps":false}' >def.json
	ml_cli schema users <def.json >/dev/null 2>seed.err || ml_fail "schema users: $(cat seed.err)"
	ml_cli schema notes <def.json >/dev/null 2>seed.err || ml_fail "schema notes: $(cat seed.err)"
}

# received: the bodies this case's path received (answered 2xx), as a
# JSON array in arrival order, into received.json.
received()
{
	ml_webhook_received received.json
}

# received_at_least N: received.json (read again) holds N bodies or more.
received_at_least()
{
	received
	[ "$(jq length received.json)" -ge "$1" ]
}

# wait_received N [SECONDS]: waits (default 10 s) until N bodies arrived.
wait_received()
{
	ml_wait_until "${2:-10}" received_at_least "$1" ||
	    ml_fail "$(jq length received.json) of $1 webhook calls after ${2:-10} s: $(head -c 800 received.json)"
}

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
	ml_mount "$MNT" -o "plugin=$WEBHOOK_SO"
	unset S3DB_WEBHOOK_URL
	# the plugin's thread runs, its .so is mapped, its file is listed
	grep -qx webhook /proc/$DAEMON_PID/task/*/comm ||
	    ml_fail "no thread named webhook in the daemon: $(cat /proc/$DAEMON_PID/task/*/comm | tr '\n' ' ')"
	grep -q "$WEBHOOK_SO" /proc/$DAEMON_PID/maps || ml_fail "webhook.so is not mapped in the daemon"
	atf_check -o match:'^\.webhook$' ls -a "$MNT"

	echo '{"name":"Carl"}' | tee "$MNT/users/carl.json" >/dev/null
	sed -i 's/Carl/Carla/' "$MNT/users/carl.json"
	rm "$MNT/users/carl.json"
	wait_received 3
	ml_jq_true received.json 'length == 3'
	ml_jq_true received.json '[.[].event] == ["insert", "update", "delete"]'
	ml_jq_true received.json '[.[].user.process] == ["tee", "sed", "rm"]'
	ml_jq_true received.json 'all(.[]; .resource == "users" and .id == "carl" and .user.uid == 0
	    and .user.gid == 0 and .user.pid > 0 and (.timestamp | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$")))'
	ml_jq_true received.json '.[0].data == {"id": "carl", "name": "Carl"}'
	ml_jq_true received.json '.[1].data == {"id": "carl", "name": "Carla"}'
	ml_jq_true received.json '.[2].data.name == "Carla"'
	jq -s --arg p "$HOOK_PATH" '[.[] | select(.path == $p)][0]' "$S3DB_TEST_WEBHOOK_LOG" >first.json
	ml_jq_true first.json '.contentType == "application/json" and (.userAgent | startswith("s3dbfs-webhook/"))'

	cp "$MNT/.webhook" counters.json
	ml_jq_true counters.json '.sent == 3 and .failed == 0 and .dropped == 0 and .queued == 0'
	# reading a record is not among the default events
	ml_cli get users carl >/dev/null 2>&1
	echo '{"name":"Dora"}' | ml_cli put users dora >/dev/null
	cat "$MNT/users/dora.json" >/dev/null
	sleep 0.5
	received
	ml_jq_true received.json 'length == 3'

	ml_unmount "$MNT" "$DAEMON_PID"
	grep -q 'plugin webhook: stopped (1 thread joined), shared object unloaded' "$MNT.log" ||
	    ml_fail "no clean stop in the log: $(tail -n 8 "$MNT.log")"
	! grep -Eq 'error|unloading failed' "$MNT.log" || ml_fail "errors in the log: $(grep -E 'error|unloading failed' "$MNT.log")"
	# the URL is never logged
	! grep -q "$HOOK_PATH" "$MNT.log" || ml_fail "the webhook URL is in the log"
}
ml_both writes_through_the_mount_reach_the_webhook_with_the_process_names

do_sigterm_sends_the_last_writes_events_before_unloading()
{
	seed
	config cfg.json '{}'
	# slow answers: events wait in the queue when SIGTERM comes
	control POST delay '{"ms": 300}'
	ml_mount "$MNT" -o "config=$WORK/cfg.json"
	for n in a b c d; do
		echo "{\"name\":\"$n\"}" >"$MNT/notes/$n.json"
	done
	kill -TERM "$DAEMON_PID"
	ml_daemon_exits "$DAEMON_PID" 0
	received
	ml_jq_true received.json 'length == 4 and ([.[].id] | sort) == ["a", "b", "c", "d"]'
	ml_jq_true received.json 'all(.[]; .event == "insert" and .resource == "notes")'
	grep -q 'plugin webhook: stopped (1 thread joined), shared object unloaded' "$MNT.log" ||
	    ml_fail "no clean stop in the log: $(tail -n 8 "$MNT.log")"
	control POST delay '{"ms": 0}'
}
ml_one sigterm_sends_the_last_writes_events_before_unloading local

do_config_options_filter_retry_and_change_live()
{
	seed
	config cfg.json '{"events": ["delete"], "resources": ["users"], "retries": 2}'
	ml_mount "$MNT" -o "config=$WORK/cfg.json"
	echo '{"name":"Eve"}' >"$MNT/users/eve.json"      # not an event asked for
	echo '{"name":"n1"}' >"$MNT/notes/n1.json"
	rm "$MNT/notes/n1.json"                           # not a resource asked for
	control POST respond '{"status": 500, "count": 1}' # first attempt fails
	rm "$MNT/users/eve.json"
	wait_received 1
	sleep 0.5
	received
	ml_jq_true received.json 'length == 1 and .[0].event == "delete" and .[0].id == "eve"'
	ml_jq_true received.json '.[0].user.process == "rm"'
	cp "$MNT/.webhook" counters.json
	ml_jq_true counters.json '.sent == 1 and .retried == 1 and .failed == 0'

	# options changed in the watched file apply without a remount
	config cfg.json '{"events": ["insert", "delete"], "resources": ["users"]}'
	ml_wait_log "$MNT.log" 'plugins\[0\] .* options changed: events.*applied'
	echo '{"name":"Fay"}' >"$MNT/users/fay.json"
	wait_received 2
	ml_jq_true received.json '.[1].event == "insert" and .[1].id == "fay"'
	# a change the plugin refuses keeps the running options
	config cfg.json '{"events": ["nonsense"]}'
	ml_wait_log "$MNT.log" 'refused \(webhook: events\[0\]: must be one of'
	rm "$MNT/users/fay.json"
	wait_received 3
	ml_jq_true received.json '.[2].event == "delete" and .[2].id == "fay"'
	ml_unmount "$MNT" "$DAEMON_PID"
}
ml_both config_options_filter_retry_and_change_live

do_a_full_queue_drops_events_without_slowing_writes()
{
	seed
	config cfg.json '{"queueSize": 2, "timeout": 10000}'
	control POST delay '{"ms": 1500}'
	ml_mount "$MNT" -o "config=$WORK/cfg.json"
	start=$(date +%s%N)
	for n in 1 2 3 4 5 6 7 8; do
		echo "{\"name\":\"n$n\"}" >"$MNT/notes/n$n.json"
	done
	took=$(( ($(date +%s%N) - start) / 1000000 ))
	# eight writes while the receiver takes 1.5 s per call: the FUSE
	# threads never wait for it
	[ "$took" -lt 1500 ] || ml_fail "8 writes took $took ms with a slow webhook"
	cp "$MNT/.webhook" counters.json
	ml_jq_true counters.json '.dropped >= 5 and .queued <= 2'
	grep -q 'plugin webhook: queue full (2 waiting): 1 event(s) dropped so far' "$MNT.log" ||
	    ml_fail "the first drop is not logged: $(tail -n 5 "$MNT.log")"
	control POST delay '{"ms": 0}'
	ml_unmount "$MNT" "$DAEMON_PID"
	received
	dropped=$(jq .dropped counters.json)
	ml_jq_true received.json "length == 8 - $dropped"
}
ml_one a_full_queue_drops_events_without_slowing_writes local

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
	ml_is_mounted "$MNT" && ml_fail "$MNT is mounted after a refused plugin"
	return 0
}
ml_both a_broken_plugin_refuses_the_mount_clearly

do_cli_writes_go_through_the_configured_plugins()
{
	seed
	config cfg.json '{}'
	atf_check -o ignore "$S3DB_CLI" --config cfg.json "$CLI_C" put users gil <<EOF
{"name":"Gil"}
EOF
	wait_received 1 5
	ml_jq_true received.json '.[0].event == "insert" and .[0].id == "gil" and .[0].user.process == "s3db"'
	# --plugin PATH (the URL from the environment) and a config file
	# giving the connection string
	jq --arg c "$CLI_C" '{connectionString: $c}' /dev/null -n >conn.json
	chmod 600 conn.json
	atf_check -o ignore env S3DB_WEBHOOK_URL="$HOOK_URL" \
	    "$S3DB_CLI" --config conn.json --plugin "$WEBHOOK_SO" rm users gil
	wait_received 2 5
	ml_jq_true received.json '.[1].event == "delete" and .[1].id == "gil"'
	atf_check -s exit:2 -e match:'AuditPlugin: not available in this build' \
	    "$S3DB_CLI" --plugin AuditPlugin "$CLI_C" resources
}
ml_both cli_writes_go_through_the_configured_plugins

atf_init_test_cases()
{
	ml_add_cases
}
