#! /usr/bin/env atf-sh
#
# t_valgrind.sh — the s3dbfs daemon runs clean under valgrind (memcheck)
# through a plugin workload:
#   - the daemon is started in the foreground under valgrind with the
#     example configuration contrib/examples/plugins.json (CostsPlugin,
#     MetricsPlugin, CachePlugin with the memory driver, the webhook
#     example .so), adapted to the test servers: its connection string,
#     the built webhook.so, the receiver's URL (tests/servers/webhook.js)
#     and a short flushInterval so that the metrics thread flushes;
#   - a workload through the mount: tee, sed -i, cat, ls -l, grep -r, rm,
#     mkdir of a resource, every plugin's virtual file read, `reset` to
#     /.costs, `flush` to /.metrics, `clear` to /.cache;
#   - fusermount3 -u, then the daemon must exit 0 (valgrind's
#     --error-exitcode is 99) and valgrind's log must show no error and
#     no definitely or indirectly lost block (the log is printed on
#     failure).
# The S3 cases go through the strict front (one of them with the
# CachePlugin's S3 driver, compressed and encrypted); the _local case uses
# file://.
#
# An ASan build (--enable-sanitizers; the daemon links libasan) cannot run
# under valgrind: the cases are skipped there, with that reason (the ASan
# run of the other mount tests covers it).  valgrind itself is required
# (scripts/install-deps.sh installs it): without it the cases fail.
#
# Programs and files: $S3DBFS, $S3DB_CLI, $WEBHOOK_SO, $S3DBFS_CONTRIB,
# exported by the generated tests/t_valgrind.  The S3DB_TEST_* variables
# of tests/servers/servers.sh must be set.  Mounting needs root; every
# case unmounts in its cleanup.

fail()
{
	atf_fail "$(printf '%s' "$*" | tr -s '\n' '|' | sed 's/|/ | /g')"
}

common_head()
{
	atf_set require.user root
	atf_set require.progs "fusermount3 jq curl"
	# valgrind slows the daemon down some 20 to 50 times
	atf_set timeout 900
}

# skip_or_require_valgrind: skips an ASan build, fails without valgrind.
skip_or_require_valgrind()
{
	# (gcc links libasan.so; clang links its runtime statically)
	if ldd "$S3DBFS" 2>/dev/null | grep -q 'libasan' || grep -qa '__asan_init' "$S3DBFS"; then
		atf_skip "$S3DBFS is an ASan build (it links libasan): valgrind cannot run it"
	fi
	command -v valgrind >/dev/null 2>&1 ||
	    fail "valgrind is not installed (scripts/install-deps.sh installs it)"
}

setup()
{
	for v in S3DBFS S3DB_CLI WEBHOOK_SO S3DBFS_CONTRIB; do
		eval "[ -n \"\${$v:-}\" ] || $v=\$(atf_config_get $v '')"
	done
	[ -x "$S3DBFS" ] || fail "S3DBFS='$S3DBFS' is not an executable (the built s3dbfs)"
	[ -x "$S3DB_CLI" ] || fail "S3DB_CLI='$S3DB_CLI' is not an executable (the built s3db)"
	[ -f "$WEBHOOK_SO" ] || fail "WEBHOOK_SO='$WEBHOOK_SO' is missing (make plugins/webhook/webhook.la)"
	EXAMPLE=$S3DBFS_CONTRIB/examples/plugins.json
	[ -f "$EXAMPLE" ] || fail "$EXAMPLE is missing"
	skip_or_require_valgrind
	for v in S3DB_TEST_WEBHOOK_URL S3DB_TEST_WEBHOOK_LOG; do
		eval "[ -n \"\${$v:-}\" ]" ||
		    fail "$v is not set: start tests/servers/servers.sh and export its env"
	done
	unset S3DB_PASSPHRASE S3DB_LOG_LEVEL S3DB_WEBHOOK_URL AWS_PROFILE AWS_ACCESS_KEY_ID \
	    AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_REGION AWS_ENDPOINT_URL
	WORK=$(pwd)
	MNT=$WORK/mnt
	mkdir -p "$MNT"
	HOOK_URL="$S3DB_TEST_WEBHOOK_URL/$(atf_get ident)-$$"
	HOOK_PATH="/${HOOK_URL#http://*/}"
}

use_local()
{
	CLI_C="file://$WORK/db"
	DAEMON_C=$CLI_C
	MOUNT_JSON='{"log_level": "info"}'
}

use_s3()
{
	for v in S3DB_TEST_S3_URL S3DB_TEST_S3_BUCKET S3DB_TEST_ACCESS_KEY S3DB_TEST_SECRET_KEY; do
		eval "[ -n \"\${$v:-}\" ]" ||
		    fail "$v is not set: start tests/servers/servers.sh and export its env"
	done
	PREFIX="t/valgrind-$(atf_get ident)-$$-$(date +%s%N)"
	hostport=${S3DB_TEST_S3_URL#http://}
	enc=$(jq -rn --arg s "$S3DB_TEST_SECRET_KEY" '$s | @uri')
	CLI_C="http://$S3DB_TEST_ACCESS_KEY:$enc@$hostport/$S3DB_TEST_S3_BUCKET/$PREFIX"
	DAEMON_C="http://$hostport/$S3DB_TEST_S3_BUCKET/$PREFIX"
	(umask 077 && printf '%s:%s\n' "$S3DB_TEST_ACCESS_KEY" "$S3DB_TEST_SECRET_KEY" >"$WORK/passwd")
	MOUNT_JSON=$(jq -n --arg p "$WORK/passwd" '{log_level: "info", passwd_file: $p}')
}

cli()
{
	"$S3DB_CLI" "$CLI_C" "$@"
}

jqtrue()
{
	jq -e "$2" "$1" >/dev/null 2>&1 || fail "$1: jq '$2' is not true: $(head -c 800 "$1")"
}

# write_config: config.json from the example, pointed at the test servers;
# CACHE_OPTIONS (JSON), when set, replaces the CachePlugin's options and
# CACHE_DRIVER names the driver they choose.
write_config()
{
	(umask 077 && jq --arg c "$DAEMON_C" --arg so "$WEBHOOK_SO" --arg url "$HOOK_URL" \
	    --argjson mount "$MOUNT_JSON" --argjson cache "${CACHE_OPTIONS:-null}" '
	    .connectionString = $c
	    | .mount = $mount
	    | .plugins |= map(
	        if type == "object" and has("path") then
	            .path = $so | .options.webhookUrl = $url | .options.resources = ["users", "notes"]
	        elif type == "object" and .name == "MetricsPlugin" then
	            .options.flushInterval = 500
	        elif type == "object" and .name == "CachePlugin" and $cache != null then
	            .options = $cache
	        else . end)' "$EXAMPLE" >config.json) || fail "cannot adapt $EXAMPLE"
	jqtrue config.json '[.plugins[] | .name // "so"] == ["CostsPlugin", "MetricsPlugin", "CachePlugin", "so"]'
	jqtrue config.json ".plugins[2].options.driverType == \"$CACHE_DRIVER\""
}

is_mounted()
{
	awk -v m="$1" '$2 == m && $3 == "fuse.s3dbfs" { f = 1 } END { exit !f }' /proc/mounts
}

# show_valgrind: valgrind's log, for failure messages.
show_valgrind()
{
	printf '%s' "valgrind log: "
	grep -E 'ERROR SUMMARY|lost:|^==[0-9]+== (Invalid|Conditional|Use of|Syscall|Mismatched|Source and| {3}(at|by) |[0-9,]+ .*bytes in)' \
	    valgrind.log | head -n 80
	printf '%s' " | daemon log: "
	tail -n 10 "$MNT.log"
}

# mount_under_valgrind: the daemon in the foreground under valgrind with
# ./config.json; waits (60 s at most) for the mount.
mount_under_valgrind()
{
	valgrind --leak-check=full --show-leak-kinds=definite,indirect \
	    --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --track-fds=no \
	    --num-callers=30 --keep-debuginfo=yes --log-file="$WORK/valgrind.log" \
	    "$S3DBFS" -o config="$WORK/config.json" "$MNT" -f >>"$MNT.log" 2>&1 &
	DAEMON_PID=$!
	echo "$DAEMON_PID" >>daemon.pids
	i=0
	while ! is_mounted "$MNT"; do
		kill -0 "$DAEMON_PID" 2>/dev/null ||
		    fail "s3dbfs exited under valgrind before mounting: $(tail -n 20 "$MNT.log") | $(show_valgrind)"
		i=$((i + 1))
		[ $i -le 600 ] || fail "not mounted after 60 s under valgrind: $(tail -n 20 "$MNT.log")"
		sleep 0.1
	done
}

# wait_json FILE JQ SECONDS: waits until the virtual file FILE satisfies JQ
# (the daemon keeps a virtual file's text made at stat for the open that
# follows within a second: a read may show a slightly older state).
wait_json()
{
	i=0
	until cat "$1" >wait.json 2>/dev/null && jq -e "$2" wait.json >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -le $(($3 * 5)) ] || fail "$1 does not satisfy '$2' after $3 s: $(head -c 800 wait.json)"
		sleep 0.2
	done
}

# unmount_under_valgrind: fusermount3 -u; the daemon must exit 0 (valgrind
# exits 99 when it found an error) within 180 s.
unmount_under_valgrind()
{
	i=0
	until fusermount3 -u "$MNT" 2>unmount.err; do
		i=$((i + 1))
		[ $i -le 100 ] || fail "cannot unmount: $(cat unmount.err)"
		sleep 0.2
	done
	i=0
	while kill -0 "$DAEMON_PID" 2>/dev/null; do
		i=$((i + 1))
		[ $i -le 1800 ] || fail "s3dbfs still runs under valgrind 180 s after unmount: $(show_valgrind)"
		sleep 0.1
	done
	wait "$DAEMON_PID"
	st=$?
	[ $st -eq 0 ] || fail "s3dbfs under valgrind exited $st: $(show_valgrind)"
}

# valgrind_clean: the log is a complete memcheck report without errors
# nor lost blocks.
valgrind_clean()
{
	grep -q 'Memcheck, a memory error detector' valgrind.log ||
	    fail "valgrind.log is no memcheck log: $(head -c 600 valgrind.log)"
	grep -Eq 'ERROR SUMMARY: 0 errors' valgrind.log ||
	    fail "no 'ERROR SUMMARY: 0 errors' in valgrind's log: $(show_valgrind)"
	! grep -Eq 'ERROR SUMMARY: [1-9]|(definitely|indirectly) lost: [1-9]' valgrind.log ||
	    fail "valgrind found errors: $(show_valgrind)"
	grep -Eq 'HEAP SUMMARY' valgrind.log || fail "valgrind's log has no heap summary (leak check not run)"
}

# ---- the workload -------------------------------------------------------------------

do_plugin_workload_runs_clean_under_valgrind()
{
	CACHE_DRIVER=${CACHE_DRIVER:-memory}
	printf '%s' '{"attributes":{"name":"string|required","age":"number|optional"},"timestamps":false}' |
	    cli schema users >/dev/null 2>seed.err || fail "schema users: $(cat seed.err)"
	write_config
	mount_under_valgrind
	for f in .costs .metrics .metrics.prom .cache .webhook; do
		[ -f "$MNT/$f" ] || fail "no $f in the mount: $(ls -a "$MNT" | tr '\n' ' ')"
	done

	# records: create, edit, read, list, search, remove
	echo '{"name":"Ada","age":36}' | tee "$MNT/users/ada.json" >/dev/null || fail "tee ada failed"
	echo '{"name":"Bob","age":41}' | tee "$MNT/users/bob.json" >/dev/null || fail "tee bob failed"
	sed -i 's/"Ada"/"Ada L"/' "$MNT/users/ada.json" || fail "sed -i failed"
	atf_check -o match:'"Ada L"' cat "$MNT/users/ada.json"
	atf_check -o match:'"Ada L"' cat "$MNT/users/ada.json"
	# a record's binary content (read through the CachePlugin: a miss,
	# then a hit)
	printf 'binary content' >"$MNT/users/ada.bin" || fail "writing users/ada.bin failed"
	atf_check -o inline:'binary content' cat "$MNT/users/ada.bin"
	sleep 1.5
	atf_check -o inline:'binary content' cat "$MNT/users/ada.bin"
	atf_check -o match:'ada\.json' -o match:'bob\.json' ls -l "$MNT/users"
	atf_check -o match:'bob\.json' grep -rl Bob "$MNT/users"
	rm "$MNT/users/bob.json" || fail "rm failed"
	[ -e "$MNT/users/bob.json" ] && fail "users/bob.json is still there after rm"
	# a free-form resource made with mkdir, one record in it
	mkdir "$MNT/notes" || fail "mkdir notes failed"
	echo '{"text":"hello"}' | tee "$MNT/notes/n1.json" >/dev/null || fail "tee notes/n1.json failed"
	atf_check -o match:'"hello"' cat "$MNT/notes/n1.json"

	# the plugins' files
	wait_json "$MNT/.costs" '.requests.put >= 3 and .requests.delete >= 1' 60
	cp wait.json costs.json
	jqtrue costs.json '.requests.total == .events.total and .total > 0'
	wait_json "$MNT/.metrics" '.usage.resources.users.inserts >= 1 and .usage.resources.users.deletes == 1' 60
	i=0
	until cat "$MNT/.metrics.prom" >metrics.prom &&
	    grep -q '^s3db_operations_total{resource="users",operation="insert"} [1-9]' metrics.prom; do
		i=$((i + 1))
		[ $i -le 150 ] || fail "no insert counter in .metrics.prom after 30 s: $(head -c 600 metrics.prom)"
		sleep 0.2
	done
	wait_json "$MNT/.cache" ".driver == \"$CACHE_DRIVER\" and .hits >= 1 and .misses >= 1 and .entries >= 1" 30
	# insert ada, insert bob, update ada, delete bob, insert notes/n1
	wait_json "$MNT/.webhook" '.sent == 5 and .failed == 0 and .dropped == 0' 60

	# the commands the files take
	# (the metrics thread may flush, and so make requests, at any time:
	# the counts fall, not necessarily to 0)
	before=$(jq '.requests.total' costs.json)
	echo reset >"$MNT/.costs" || fail "echo reset > .costs failed"
	wait_json "$MNT/.costs" ".requests.total < $before" 30
	grep -q 'CostsPlugin: /.costs: counters reset' "$MNT.log" || fail "no reset in the log"
	echo flush >"$MNT/.metrics" || fail "echo flush > .metrics failed"
	echo reset >"$MNT/.metrics" || fail "echo reset > .metrics failed"
	echo clear >"$MNT/.cache" || fail "echo clear > .cache failed"
	wait_json "$MNT/.cache" '.entries == 0' 30
	atf_check -o match:'"Ada L"' cat "$MNT/users/ada.json"
	# the metrics thread flushes every 0.5 s: let it run a few rounds
	sleep 3

	unmount_under_valgrind
	valgrind_clean
	# every command was taken: the shell's O_TRUNC open before the text
	# (an empty write) is no refused command
	! grep -Eq 'unknown command|refused|\] error: ' "$MNT.log" ||
	    fail "refusals or errors in the daemon's log: $(grep -E 'unknown command|refused|\] error: ' "$MNT.log")"
	# the metrics reached storage (the flush thread ran)
	cli ls plg_metrics >flushed.json 2>cli.err || fail "s3db ls plg_metrics: $(cat cli.err)"
	jqtrue flushed.json 'map(select(.resourceName == "users")) | length >= 1'
	# the webhook's events arrived with the writers' process names
	jq -s --arg p "$HOOK_PATH" '[.[] | select(.path == $p and .status < 300) | .body]' \
	    "$S3DB_TEST_WEBHOOK_LOG" >received.json || fail "cannot read $S3DB_TEST_WEBHOOK_LOG"
	jqtrue received.json '[.[] | [.event, .resource, .id, .user.process]] ==
	    [["insert", "users", "ada", "tee"], ["insert", "users", "bob", "tee"],
	     ["update", "users", "ada", "sed"], ["delete", "users", "bob", "rm"],
	     ["insert", "notes", "n1", "tee"]]'
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

atf_test_case plugin_workload_runs_clean_under_valgrind cleanup
plugin_workload_runs_clean_under_valgrind_head() { common_head; }
plugin_workload_runs_clean_under_valgrind_body() { setup; use_s3; do_plugin_workload_runs_clean_under_valgrind; }
plugin_workload_runs_clean_under_valgrind_cleanup() { cleanup_mounts; }

atf_test_case plugin_workload_runs_clean_under_valgrind_local cleanup
plugin_workload_runs_clean_under_valgrind_local_head() { common_head; }
plugin_workload_runs_clean_under_valgrind_local_body() { setup; use_local; do_plugin_workload_runs_clean_under_valgrind; }
plugin_workload_runs_clean_under_valgrind_local_cleanup() { cleanup_mounts; }

# The CachePlugin's S3 driver (its objects in the bucket, gzip and
# AES-256-GCM bodies) instead of the memory driver.
atf_test_case plugin_workload_with_the_s3_cache_runs_clean_under_valgrind cleanup
plugin_workload_with_the_s3_cache_runs_clean_under_valgrind_head() { common_head; }
plugin_workload_with_the_s3_cache_runs_clean_under_valgrind_body()
{
	setup
	use_s3
	CACHE_DRIVER=s3
	CACHE_OPTIONS='{"driverType": "s3", "ttl": 600000,
	    "s3Options": {"compression": true, "encryption": true, "encryptionKey": "valgrind test key"}}'
	do_plugin_workload_runs_clean_under_valgrind
}
plugin_workload_with_the_s3_cache_runs_clean_under_valgrind_cleanup() { cleanup_mounts; }

atf_init_test_cases()
{
	atf_add_test_case plugin_workload_runs_clean_under_valgrind
	atf_add_test_case plugin_workload_runs_clean_under_valgrind_local
	atf_add_test_case plugin_workload_with_the_s3_cache_runs_clean_under_valgrind
}
