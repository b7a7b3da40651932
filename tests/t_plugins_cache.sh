#! /usr/bin/env atf-sh
#
# t_plugins_cache.sh — CachePlugin with the S3 driver in the s3dbfs daemon
# and the s3db CLI, sharing one cache in the bucket (strict S3 front):
#   - /.cache shows the driver and stats; "clear" empties the cache (the
#     objects are gone from the bucket); other text is refused;
#   - cache objects written by a read have the spec's names (§6.2:
#     plugin=cache/cache/resource=R/action=A[/md5 16].json.gz) and bodies;
#   - a write through the mount drops what the CLI cached for that record
#     and the resource's listings, and the CLI then reads the new data;
#   - a write through the CLI (same config) drops the content the daemon
#     cached for the record, so the daemon's next read is fresh;
#   - the config file edited under a running mount: the new ttl and
#     compression apply at once (the log says what changed, /.cache and the
#     next cache object show them); a new s3Options.prefix is refused with
#     the option named and the running options stay.
# Objects are inspected through the front with curl's SigV4 signer.
# Programs: $S3DBFS, $S3DB_CLI (exported by the generated
# tests/t_plugins_cache).  Mounting needs root; every case unmounts in its
# cleanup.  The helpers named ml_* are tests/mountlib.sh's ($MOUNTLIB,
# exported by the generated program too).

. "${MOUNTLIB:?MOUNTLIB must name tests/mountlib.sh (the generated tests/t_plugins_cache exports it)}"
ML_S3_TAG=cache

common_head()
{
	ml_mount_head 120 curl md5sum
}

# setup: the programs, a fresh prefix of the bucket (ml_use_s3), the cache's
# config file ./cache.json (in DAEMON_OPTS too) and CACHE, the cache's key
# prefix.
setup()
{
	ml_setup S3DBFS S3DB_CLI
	ml_use_s3
	DAEMON_OPTS="$DAEMON_OPTS,config=$WORK/cache.json"
	jq -n '{plugins: [{name: "CachePlugin", options: {driver: "s3", ttl: 600000}}]}' \
	    >"$WORK/cache.json"
	CACHE="$PREFIX/plugin=cache/cache"
}

# ccli ARGS: the CLI with the cache's config (ml_cli: without plugins).
ccli()
{
	"$S3DB_CLI" --config "$WORK/cache.json" "$CLI_C" "$@"
}

# seed: resource users (partition byRegion) with ana and bob.
seed()
{
	echo '{"attributes":{"name":"string|required","region":"string"},"timestamps":false,
	  "partitions":{"byRegion":{"fields":{"region":"string"}}}}' >def.json
	ml_cli schema users <def.json >/dev/null 2>seed.err || ml_fail "schema users: $(cat seed.err)"
	echo '{"name":"Ana","region":"BR"}' | ml_cli put users ana >/dev/null 2>seed.err ||
	    ml_fail "put ana: $(cat seed.err)"
	echo '{"name":"Bob","region":"US"}' | ml_cli put users bob >/dev/null 2>seed.err ||
	    ml_fail "put bob: $(cat seed.err)"
}

# s3 PATH_AND_QUERY [CURL ARGS]: a signed request to the front.
s3()
{
	p=$1
	shift
	curl -sf --aws-sigv4 "aws:amz:us-east-1:s3" \
	    --user "$S3DB_TEST_ACCESS_KEY:$S3DB_TEST_SECRET_KEY" \
	    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@" "$S3DB_TEST_S3_URL/$S3DB_TEST_S3_BUCKET$p"
}

uri()
{
	printf '%s' "$1" | jq -Rr 'split("/") | map(@uri) | join("/")'
}

# cache_keys: the cache's object keys (relative to plugin=cache/cache/),
# sorted, one a line, into keys.txt.
cache_keys()
{
	s3 "?list-type=2&prefix=$(printf '%s' "$CACHE/" | jq -Rr @uri)" >list.xml ||
	    ml_fail "cannot list the bucket"
	grep -o '<Key>[^<]*</Key>' list.xml | sed -e 's/<Key>//; s/<\/Key>//' \
	    -e "s|^$CACHE/||" | sort >keys.txt
}

has_key()
{
	cache_keys
	grep -qxF "$1" keys.txt || ml_fail "no cache object $1; the cache holds: $(cat keys.txt)"
}

lacks_key()
{
	cache_keys
	grep -qxF "$1" keys.txt && ml_fail "cache object $1 is still there"
	return 0
}

# id_key ACTION ID: the cache key of a per-record read.
id_key()
{
	h=$(printf '{"id":"%s"}' "$2" | md5sum | cut -c1-16)
	echo "resource=users/action=$1/$h.json.gz"
}

# ---- cases ----------------------------------------------------------------------------

atf_test_case cache_file_shows_stats_and_clear_empties_the_bucket cleanup
cache_file_shows_stats_and_clear_empties_the_bucket_head() { common_head; }
cache_file_shows_stats_and_clear_empties_the_bucket_body()
{
	setup
	seed
	ml_mount "$MNT"
	atf_check -o match:'^\.cache$' ls -a "$MNT"
	ccli get users ana >/dev/null 2>cli.err || ml_fail "get: $(cat cli.err)"
	ccli count users >/dev/null 2>cli.err || ml_fail "count: $(cat cli.err)"
	cp "$MNT/.cache" stats.json
	ml_jq_true stats.json '.driver == "s3" and .entries == 2 and .bytes > 0'
	ml_jq_true stats.json 'has("hits") and has("misses") and has("hitRate") and has("evictions")'
	# the command is taken when the file is closed: cp reports close()
	echo flush >cmd.txt
	cp cmd.txt "$MNT/.cache" 2>cp.err && ml_fail "writing 'flush' to /.cache was accepted"
	grep -q "Invalid argument" cp.err || ml_fail "flush refused with: $(cat cp.err)"
	grep -q "unknown command 'flush'" "$MNT.log" || ml_fail "no reason in the log: $(tail -n 5 "$MNT.log")"
	echo clear >cmd.txt
	cp cmd.txt "$MNT/.cache" 2>cp.err || ml_fail "writing 'clear' to /.cache failed: $(cat cp.err)"
	cache_keys
	[ -s keys.txt ] && ml_fail "objects left after clear: $(cat keys.txt)"
	cp "$MNT/.cache" stats.json
	ml_jq_true stats.json '.entries == 0'
	ml_unmount "$MNT" "$DAEMON_PID"
}
cache_file_shows_stats_and_clear_empties_the_bucket_cleanup() { ml_cleanup; }

atf_test_case cache_objects_have_the_spec_format
cache_objects_have_the_spec_format_head() { atf_set require.progs "jq curl md5sum"; }
cache_objects_have_the_spec_format_body()
{
	setup
	seed
	now=$(date +%s%3N)
	ccli get users ana >/dev/null 2>cli.err || ml_fail "get: $(cat cli.err)"
	ccli ls users --ids >/dev/null 2>cli.err || ml_fail "ls: $(cat cli.err)"
	ccli count users --partition byRegion --values '{"region":"BR"}' >count.txt 2>cli.err ||
	    ml_fail "count: $(cat cli.err)"
	atf_check -o inline:"1\n" cat count.txt
	has_key "$(id_key get ana)"
	has_key "resource=users/action=listIds.json.gz"
	has_key "resource=users/action=count/partition:byRegion/region:BR.json.gz"
	s3 "/$(uri "$CACHE/resource=users/action=listIds.json.gz")" -D headers.txt -o body.json ||
	    ml_fail "cannot read the listIds object"
	grep -qi '^content-type: application/json' headers.txt ||
	    ml_fail "content type: $(grep -i content-type headers.txt)"
	# {"data":"[\"ana\",\"bob\"]","compressed":false,"originalSize":13,"_expiresAt":T}
	ml_jq_true body.json 'keys_unsorted == ["data", "compressed", "originalSize", "_expiresAt"]'
	ml_jq_true body.json '.data == "[\"ana\",\"bob\"]" and .compressed == false and .originalSize == 13'
	ml_jq_true body.json "._expiresAt >= $now + 600000 and ._expiresAt <= $(date +%s%3N) + 600000"
	# a second read is answered from the cache: one GET of the object
	ccli get users ana >out.json || ml_fail "get from the cache failed"
	ml_jq_true out.json '.name == "Ana"'
}

atf_test_case mount_write_invalidates_what_the_cli_cached cleanup
mount_write_invalidates_what_the_cli_cached_head() { common_head; }
mount_write_invalidates_what_the_cli_cached_body()
{
	setup
	seed
	ccli get users ana >/dev/null 2>cli.err || ml_fail "get: $(cat cli.err)"
	ccli get users bob >/dev/null 2>cli.err || ml_fail "get: $(cat cli.err)"
	ccli count users >/dev/null 2>cli.err || ml_fail "count: $(cat cli.err)"
	ccli count users --partition byRegion --values '{"region":"US"}' >/dev/null 2>cli.err ||
	    ml_fail "count US: $(cat cli.err)"
	has_key "$(id_key get ana)"
	ml_mount "$MNT"
	sed -i 's/"Ana"/"Anna"/' "$MNT/users/ana.json" || ml_fail "sed -i through the mount failed"
	# ana's entry and the resource's count are gone; bob's and the US
	# partition's (ana is BR) are kept
	lacks_key "$(id_key get ana)"
	lacks_key "resource=users/action=count.json.gz"
	has_key "$(id_key get bob)"
	has_key "resource=users/action=count/partition:byRegion/region:US.json.gz"
	ccli get users ana >out.json || ml_fail "get after the write failed"
	ml_jq_true out.json '.name == "Anna"'
	# an insert through the mount drops the count again
	ccli count users >/dev/null
	has_key "resource=users/action=count.json.gz"
	echo '{"name":"Cid","region":"US"}' >"$MNT/users/cid.json" || ml_fail "insert through the mount"
	lacks_key "resource=users/action=count.json.gz"
	lacks_key "resource=users/action=count/partition:byRegion/region:US.json.gz"
	[ "$(ccli count users)" = 3 ] || ml_fail "count after the insert: $(ccli count users)"
	ml_unmount "$MNT" "$DAEMON_PID"
}
mount_write_invalidates_what_the_cli_cached_cleanup() { ml_cleanup; }

atf_test_case cli_write_invalidates_what_the_daemon_reads_next cleanup
cli_write_invalidates_what_the_daemon_reads_next_head() { common_head; }
cli_write_invalidates_what_the_daemon_reads_next_body()
{
	setup
	seed
	ml_mount "$MNT"
	printf 'first version' >"$MNT/users/ana.bin" || ml_fail "writing ana.bin through the mount"
	atf_check -o inline:"first version" cat "$MNT/users/ana.bin"
	# the daemon's read of the content went through the shared cache
	has_key "$(id_key content ana)"
	atf_check -o inline:"first version" cat "$MNT/users/ana.bin"
	# a CLI write of ana with the same config drops that entry
	echo '{"name":"Ana B","region":"BR"}' | ccli update users ana >/dev/null 2>cli.err ||
	    ml_fail "update: $(cat cli.err)"
	lacks_key "$(id_key content ana)"
	# ... and the CLI deleting the record leaves the daemon nothing stale
	ccli get users ana >/dev/null
	has_key "$(id_key get ana)"
	ccli rm users ana >/dev/null 2>cli.err || ml_fail "rm: $(cat cli.err)"
	lacks_key "$(id_key get ana)"
	cp "$MNT/.cache" stats.json
	ml_jq_true stats.json '.hits >= 1'
	ml_unmount "$MNT" "$DAEMON_PID"
}
cli_write_invalidates_what_the_daemon_reads_next_cleanup() { ml_cleanup; }

atf_test_case config_change_applies_live_and_a_refused_one_keeps_the_options cleanup
config_change_applies_live_and_a_refused_one_keeps_the_options_head() { common_head; }
config_change_applies_live_and_a_refused_one_keeps_the_options_body()
{
	setup
	seed
	ml_mount "$MNT"
	cp "$MNT/.cache" stats.json
	ml_jq_true stats.json '.ttl == 600000 and .compression == true'
	# the watched file changes: ttl 600000 -> 5000, compression off
	jq -n '{plugins: [{name: "CachePlugin", options: {driver: "s3", ttl: 5000,
	    s3Options: {compression: false}}}]}' >"$WORK/cache.json.new"
	mv "$WORK/cache.json.new" "$WORK/cache.json"
	ml_wait_log "$MNT.log" 'plugins\[0\] \(CachePlugin\) options changed: .*ttl.*applied'
	ml_wait_log "$MNT.log" 'CachePlugin.*ttl: 600000 -> 5000 \(live\)'
	ml_wait_log "$MNT.log" 'CachePlugin.*compression: true -> false \(live\)'
	cp "$MNT/.cache" stats.json
	ml_jq_true stats.json '.ttl == 5000 and .compression == false and .prefix == "plugin=cache/cache/"'
	# the next entry the daemon stores expires 5 s after it is written
	printf 'bob body' >"$MNT/users/bob.bin" || ml_fail "writing bob.bin through the mount"
	before=$(date +%s%3N)
	atf_check -o inline:"bob body" cat "$MNT/users/bob.bin"
	has_key "$(id_key content bob)"
	s3 "/$(uri "$CACHE/$(id_key content bob)")" -o body.json || ml_fail "cannot read the entry"
	ml_jq_true body.json "._expiresAt >= $before + 5000 and ._expiresAt <= $(date +%s%3N) + 5000"
	# a new location for the entries is refused; the running options stay
	jq -n '{plugins: [{name: "CachePlugin", options: {driver: "s3", ttl: 1000,
	    s3Options: {prefix: "other/"}}}]}' >"$WORK/cache.json"
	ml_wait_log "$MNT.log" 'refused \(CachePlugin: s3Options.prefix \(keyPrefix\) cannot change while mounted'
	ml_wait_log "$MNT.log" 'the running options stay'
	cp "$MNT/.cache" stats.json
	ml_jq_true stats.json '.ttl == 5000 and .compression == false and .prefix == "plugin=cache/cache/"'
	ml_unmount "$MNT" "$DAEMON_PID"
}
config_change_applies_live_and_a_refused_one_keeps_the_options_cleanup() { ml_cleanup; }

atf_init_test_cases()
{
	atf_add_test_case cache_file_shows_stats_and_clear_empties_the_bucket
	atf_add_test_case cache_objects_have_the_spec_format
	atf_add_test_case mount_write_invalidates_what_the_cli_cached
	atf_add_test_case cli_write_invalidates_what_the_daemon_reads_next
	atf_add_test_case config_change_applies_live_and_a_refused_one_keeps_the_options
}
