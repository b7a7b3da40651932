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
# case unmounts in its cleanup.  The helpers named ml_* are
# tests/mountlib.sh's ($MOUNTLIB, exported by the generated program too).

. "${MOUNTLIB:?MOUNTLIB must name tests/mountlib.sh (the generated tests/t_valgrind exports it)}"
ML_S3_TAG=valgrind
# valgrind slows the daemon down some 20 to 50 times: mounting may take a
# minute, the exit (the leak check) three; messages about the daemon
# failing quote valgrind's log
ML_MOUNT_SECONDS=60
ML_EXIT_SECONDS=180
ML_DETAIL=show_valgrind

common_head()
{
	ml_mount_head 900 curl
}

# skip_or_require_valgrind: skips an ASan build, fails without valgrind.
skip_or_require_valgrind()
{
	# (gcc links libasan.so; clang links its runtime statically)
	if ldd "$S3DBFS" 2>/dev/null | grep -q 'libasan' || grep -qa '__asan_init' "$S3DBFS"; then
		atf_skip "$S3DBFS is an ASan build (it links libasan): valgrind cannot run it"
	fi
	command -v valgrind >/dev/null 2>&1 ||
	    ml_fail "valgrind is not installed (scripts/install-deps.sh installs it)"
}

setup()
{
	ml_setup S3DBFS S3DB_CLI WEBHOOK_SO S3DBFS_CONTRIB
	EXAMPLE=$S3DBFS_CONTRIB/examples/plugins.json
	[ -f "$EXAMPLE" ] || ml_fail "$EXAMPLE is missing"
	skip_or_require_valgrind
	ml_use_webhook
}

# write_config: config.json from the example, pointed at the test servers
# (ml_use_local or ml_use_s3 first); CACHE_OPTIONS (JSON), when set,
# replaces the CachePlugin's options and CACHE_DRIVER names the driver they
# choose.
write_config()
{
	if [ "$BACKEND" = s3 ]; then
		MOUNT_JSON=$(jq -n --arg p "$PASSWD" '{log_level: "info", passwd_file: $p}')
	else
		MOUNT_JSON='{"log_level": "info"}'
	fi
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
	        else . end)' "$EXAMPLE" >config.json) || ml_fail "cannot adapt $EXAMPLE"
	ml_jq_true config.json '[.plugins[] | .name // "so"] == ["CostsPlugin", "MetricsPlugin", "CachePlugin", "so"]'
	ml_jq_true config.json ".plugins[2].options.driverType == \"$CACHE_DRIVER\""
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
# ./config.json; waits (ML_MOUNT_SECONDS) for the mount.
mount_under_valgrind()
{
	ml_start "$MNT" valgrind --leak-check=full --show-leak-kinds=definite,indirect \
	    --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --track-fds=no \
	    --num-callers=30 --keep-debuginfo=yes --log-file="$WORK/valgrind.log" \
	    "$S3DBFS" -o config="$WORK/config.json" "$MNT" -f
}

# prom_has_insert: /.metrics.prom (read into ./metrics.prom) counts an
# insert into users.
prom_has_insert()
{
	cat "$MNT/.metrics.prom" >metrics.prom &&
	    grep -q '^s3db_operations_total{resource="users",operation="insert"} [1-9]' metrics.prom
}

# valgrind_clean: the log is a complete memcheck report without errors
# nor lost blocks.
valgrind_clean()
{
	grep -q 'Memcheck, a memory error detector' valgrind.log ||
	    ml_fail "valgrind.log is no memcheck log: $(head -c 600 valgrind.log)"
	grep -Eq 'ERROR SUMMARY: 0 errors' valgrind.log ||
	    ml_fail "no 'ERROR SUMMARY: 0 errors' in valgrind's log: $(show_valgrind)"
	! grep -Eq 'ERROR SUMMARY: [1-9]|(definitely|indirectly) lost: [1-9]' valgrind.log ||
	    ml_fail "valgrind found errors: $(show_valgrind)"
	grep -Eq 'HEAP SUMMARY' valgrind.log || ml_fail "valgrind's log has no heap summary (leak check not run)"
}

# ---- the workload -------------------------------------------------------------------

do_plugin_workload_runs_clean_under_valgrind()
{
	CACHE_DRIVER=${CACHE_DRIVER:-memory}
	printf '%s' '{"attributes":{"name":"string|required","age":"number|optional"},"timestamps":false}' |
	    ml_cli schema users >/dev/null 2>seed.err || ml_fail "schema users: $(cat seed.err)"
	write_config
	mount_under_valgrind
	for f in .costs .metrics .metrics.prom .cache .webhook; do
		[ -f "$MNT/$f" ] || ml_fail "no $f in the mount: $(ls -a "$MNT" | tr '\n' ' ')"
	done

	# records: create, edit, read, list, search, remove
	echo '{"name":"Ada","age":36}' | tee "$MNT/users/ada.json" >/dev/null || ml_fail "tee ada failed"
	echo '{"name":"Bob","age":41}' | tee "$MNT/users/bob.json" >/dev/null || ml_fail "tee bob failed"
	sed -i 's/"Ada"/"Ada L"/' "$MNT/users/ada.json" || ml_fail "sed -i failed"
	atf_check -o match:'"Ada L"' cat "$MNT/users/ada.json"
	atf_check -o match:'"Ada L"' cat "$MNT/users/ada.json"
	# a record's binary content (read through the CachePlugin: a miss,
	# then a hit)
	printf 'binary content' >"$MNT/users/ada.bin" || ml_fail "writing users/ada.bin failed"
	atf_check -o inline:'binary content' cat "$MNT/users/ada.bin"
	sleep 1.5
	atf_check -o inline:'binary content' cat "$MNT/users/ada.bin"
	atf_check -o match:'ada\.json' -o match:'bob\.json' ls -l "$MNT/users"
	atf_check -o match:'bob\.json' grep -rl Bob "$MNT/users"
	rm "$MNT/users/bob.json" || ml_fail "rm failed"
	[ -e "$MNT/users/bob.json" ] && ml_fail "users/bob.json is still there after rm"
	# a free-form resource made with mkdir, one record in it
	mkdir "$MNT/notes" || ml_fail "mkdir notes failed"
	echo '{"text":"hello"}' | tee "$MNT/notes/n1.json" >/dev/null || ml_fail "tee notes/n1.json failed"
	atf_check -o match:'"hello"' cat "$MNT/notes/n1.json"

	# the plugins' files
	ml_wait_json "$MNT/.costs" '.requests.put >= 3 and .requests.delete >= 1' 60
	cp wait.json costs.json
	ml_jq_true costs.json '.requests.total == .events.total and .total > 0'
	ml_wait_json "$MNT/.metrics" '.usage.resources.users.inserts >= 1 and .usage.resources.users.deletes == 1' 60
	ml_wait_until 30 prom_has_insert ||
	    ml_fail "no insert counter in .metrics.prom after 30 s: $(head -c 600 metrics.prom)"
	ml_wait_json "$MNT/.cache" ".driver == \"$CACHE_DRIVER\" and .hits >= 1 and .misses >= 1 and .entries >= 1" 30
	# insert ada, insert bob, update ada, delete bob, insert notes/n1
	ml_wait_json "$MNT/.webhook" '.sent == 5 and .failed == 0 and .dropped == 0' 60

	# the commands the files take
	# (the metrics thread may flush, and so make requests, at any time:
	# the counts fall, not necessarily to 0)
	before=$(jq '.requests.total' costs.json)
	echo reset >"$MNT/.costs" || ml_fail "echo reset > .costs failed"
	ml_wait_json "$MNT/.costs" ".requests.total < $before" 30
	grep -q 'CostsPlugin: /.costs: counters reset' "$MNT.log" || ml_fail "no reset in the log"
	echo flush >"$MNT/.metrics" || ml_fail "echo flush > .metrics failed"
	echo reset >"$MNT/.metrics" || ml_fail "echo reset > .metrics failed"
	echo clear >"$MNT/.cache" || ml_fail "echo clear > .cache failed"
	ml_wait_json "$MNT/.cache" '.entries == 0' 30
	atf_check -o match:'"Ada L"' cat "$MNT/users/ada.json"
	# the metrics thread flushes every 0.5 s: let it run a few rounds
	sleep 3

	# the daemon must exit 0: valgrind exits 99 when it found an error
	ml_unmount "$MNT" "$DAEMON_PID"
	valgrind_clean
	# every command was taken: the shell's O_TRUNC open before the text
	# (an empty write) is no refused command
	! grep -Eq 'unknown command|refused|\] error: ' "$MNT.log" ||
	    ml_fail "refusals or errors in the daemon's log: $(grep -E 'unknown command|refused|\] error: ' "$MNT.log")"
	# the metrics reached storage (the flush thread ran)
	ml_cli ls plg_metrics >flushed.json 2>cli.err || ml_fail "s3db ls plg_metrics: $(cat cli.err)"
	ml_jq_true flushed.json 'map(select(.resourceName == "users")) | length >= 1'
	# the webhook's events arrived with the writers' process names
	# (compared in a compact form, which a failure shows whole; a retried
	# POST that arrived twice shows there with its timestamp)
	ml_webhook_received received.json
	jq -c '[.[] | [.event, .resource, .id, .user.process, .timestamp]]' received.json >events.json ||
	    ml_fail "received.json is not a list of events: $(head -c 300 received.json)"
	ml_jq_true events.json '[.[] | .[0:4]] ==
	    [["insert", "users", "ada", "tee"], ["insert", "users", "bob", "tee"],
	     ["update", "users", "ada", "sed"], ["delete", "users", "bob", "rm"],
	     ["insert", "notes", "n1", "tee"]]'
}

ml_case plugin_workload_runs_clean_under_valgrind \
    "setup; ml_use_s3; do_plugin_workload_runs_clean_under_valgrind"
ml_case plugin_workload_runs_clean_under_valgrind_local \
    "setup; ml_use_local; do_plugin_workload_runs_clean_under_valgrind"

# The CachePlugin's S3 driver (its objects in the bucket, gzip and
# AES-256-GCM bodies) instead of the memory driver.
do_plugin_workload_with_the_s3_cache_runs_clean_under_valgrind()
{
	CACHE_DRIVER=s3
	CACHE_OPTIONS='{"driverType": "s3", "ttl": 600000,
	    "s3Options": {"compression": true, "encryption": true, "encryptionKey": "valgrind test key"}}'
	do_plugin_workload_runs_clean_under_valgrind
}
ml_case plugin_workload_with_the_s3_cache_runs_clean_under_valgrind \
    "setup; ml_use_s3; do_plugin_workload_with_the_s3_cache_runs_clean_under_valgrind"

atf_init_test_cases()
{
	ml_add_cases
}
