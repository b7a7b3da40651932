#! /usr/bin/env atf-sh
#
# t_mount.sh — the s3dbfs daemon mounted for real: what users do with a
# mounted database (ls, cat, cp, sed -i, jq > t && mv, vim, nano's save,
# rm, mv, grep -r, find), what they must not lose (a refused write leaves
# S3 untouched; SIGTERM stores pending writes; kill -9 keeps every file
# whose close() succeeded), caches across mounts, the configuration file
# watched while mounted, the mount(8) helper, and secrets kept out of ps.
#
# Each case runs on the local backend (file://) and, with the suffix _s3,
# through the strict S3 front of tests/servers/servers.sh (S3DB_TEST_*
# variables; the case fails when they are missing).  Records are written
# and checked with the s3db CLI, never through the mount being tested.
#
# Programs: $S3DBFS (the daemon), $S3DB_CLI (the CLI), and $S3DBFS_CONTRIB
# (the source tree's contrib/: mount.s3dbfs, examples/), exported by the
# generated tests/t_mount, or ATF configuration variables of those names.
# Mounting, unmounting, the backends and the cleanup are tests/mountlib.sh's
# (ml_*; $MOUNTLIB, exported by the generated tests/t_mount).
#
# Mounting needs root (/dev/fuse is 0600).  Every case that mounts has a
# cleanup that lazily unmounts (fusermount3 -uz) and kills its daemons.

. "${MOUNTLIB:?MOUNTLIB must name tests/mountlib.sh (the generated tests/t_mount exports it)}"
ML_S3_TAG=mount

# ---- set-up ---------------------------------------------------------------------

common_head()
{
	ml_mount_head 240 perl
}

# setup: the programs (and the mount helper), a clean environment, ./mnt.
setup()
{
	ml_setup S3DBFS S3DB_CLI S3DBFS_CONTRIB
	S3DBFS_MOUNT_HELPER=$S3DBFS_CONTRIB/mount.s3dbfs
	export S3DBFS_MOUNT_HELPER
}

# record_is ID FILTER: the record ID, read by the CLI, satisfies FILTER.
record_is()
{
	ml_cli get users "$1" >"rec-$1.json" 2>rec.err || ml_fail "s3db get users $1: $(cat rec.err)"
	ml_jq_true "rec-$1.json" "$2"
}

# record_absent ID: the CLI does not find the record.
record_absent()
{
	atf_check -s exit:1 -o ignore -e ignore "$S3DB_CLI" "$CLI_C" get users "$1"
}

# seed_users: resource "users" (name required; no timestamps, so records
# compare byte for byte) with ada and bob.
seed_users()
{
	cat >users-def.json <<'EOF'
{
  "attributes": {
    "name": "string|required",
    "email": "string|optional",
    "age": "number|optional",
    "region": "string|optional"
  },
  "timestamps": false
}
EOF
	ml_cli schema users <users-def.json >/dev/null 2>seed.err || ml_fail "schema: $(cat seed.err)"
	put_user ada '{"name":"Ada","email":"ada@example.com","age":36,"region":"eu"}'
	put_user bob '{"name":"Bob","email":"bob@example.com","age":41,"region":"us"}'
}

# put_user ID JSON: stores a record with the CLI.
put_user()
{
	printf '%s' "$2" | ml_cli put users "$1" >/dev/null 2>seed.err ||
	    ml_fail "s3db put users $1: $(cat seed.err)"
}

# ---- reading ----------------------------------------------------------------------

do_ls_and_cat_show_records_written_by_the_cli()
{
	seed_users
	ml_mount "$MNT"
	atf_check -o match:'^users$' ls "$MNT"
	atf_check -o inline:'ada.json\nbob.json\n' ls "$MNT/users"
	atf_check -o match:'ada\.json' ls -l "$MNT/users"
	cp "$MNT/users/ada.json" ada.out
	ml_jq_true ada.out '.id == "ada" and .name == "Ada" and .age == 36 and .region == "eu"'
	# the file is the CLI's record, pretty, ending in a newline
	ml_cli get users ada | jq -S . >cli.json
	jq -S . ada.out >file.json
	atf_check -o empty diff cli.json file.json
	atf_check -o inline:'{\n' head -n 1 ada.out
	atf_check -o inline:'}\n' tail -n 1 ada.out
	# stat's size is what cat gives
	[ "$(stat -c %s "$MNT/users/ada.json")" = "$(wc -c <ada.out | tr -d ' ')" ] ||
	    ml_fail "stat size $(stat -c %s "$MNT/users/ada.json") != $(wc -c <ada.out) bytes read"
	atf_check -o match:'"Bob"' cat "$MNT/users/bob.json"
	ml_jq_true "$MNT/.status" 'type == "object"'
	ml_unmount "$MNT" "$DAEMON_PID"
}
ml_both ls_and_cat_show_records_written_by_the_cli

# ---- editing ----------------------------------------------------------------------

do_cp_creates_a_record()
{
	seed_users
	ml_mount "$MNT"
	printf '{"name":"Carol","email":"carol@example.com","age":29}\n' >carol.json
	atf_check cp carol.json "$MNT/users/carol.json"
	record_is carol '.name == "Carol" and .age == 29'
	atf_check -o inline:'ada.json\nbob.json\ncarol.json\n' ls "$MNT/users"
	ml_jq_true "$MNT/users/carol.json" '.id == "carol" and .name == "Carol"'
	ml_unmount "$MNT" "$DAEMON_PID"
	record_is carol '.email == "carol@example.com"'
}
ml_both cp_creates_a_record

do_sed_in_place_edit_is_stored()
{
	seed_users
	ml_mount "$MNT"
	atf_check sed -i 's/"Ada"/"Ada L."/' "$MNT/users/ada.json"
	record_is ada '.name == "Ada L." and .age == 36'
	# sed's temporary file does not stay behind
	atf_check -o inline:'ada.json\nbob.json\n' ls "$MNT/users"
	ml_unmount "$MNT" "$DAEMON_PID"
}
ml_both sed_in_place_edit_is_stored

do_jq_rewrite_and_mv_is_stored()
{
	seed_users
	ml_mount "$MNT"
	atf_check -x "cd '$MNT/users' && jq '.age = 37' ada.json > t && mv t ada.json"
	record_is ada '.age == 37 and .name == "Ada"'
	atf_check -o inline:'ada.json\nbob.json\n' ls "$MNT/users"
	ml_unmount "$MNT" "$DAEMON_PID"
}
ml_both jq_rewrite_and_mv_is_stored

do_vim_scripted_edit_is_stored()
{
	vim=$(command -v vim || command -v vim.tiny) ||
	    ml_fail "vim is needed (apt-get install vim-tiny; scripts/install-deps.sh does)"
	seed_users
	ml_mount "$MNT"
	# -N: vim's defaults (writebackup, backupcopy=auto: the rename dance)
	atf_check -o ignore -e ignore "$vim" -N -u NONE -i NONE -es \
	    -c '%s/"Bob"/"Robert"/' -c 'wq' "$MNT/users/bob.json"
	record_is bob '.name == "Robert" and .age == 41'
	# no swap, backup or probe file ("4913") left
	atf_check -o inline:'ada.json\nbob.json\n' ls -A "$MNT/users" --ignore=.schema.json \
	    --ignore=.partitions
	ml_unmount "$MNT" "$DAEMON_PID"
}
ml_both vim_scripted_edit_is_stored

# nano saves by open(O_WRONLY|O_CREAT|O_TRUNC), write, close: the close
# must succeed only once the record is stored.
do_nano_save_pattern_is_stored()
{
	seed_users
	ml_mount "$MNT"
	cat >save.pl <<'EOF'
use Fcntl;
my ($path, $text) = @ARGV;
sysopen(my $fh, $path, O_WRONLY | O_CREAT | O_TRUNC, 0644) or die "open: $!\n";
defined(syswrite($fh, $text)) or die "write: $!\n";
close($fh) or die "close: $!\n";
EOF
	atf_check perl save.pl "$MNT/users/bob.json" \
	    '{"name":"Bob","email":"bob@example.org","age":42}'
	record_is bob '.email == "bob@example.org" and .age == 42'
	atf_check perl save.pl "$MNT/users/dan.json" '{"name":"Dan"}'
	record_is dan '.name == "Dan"'
	ml_unmount "$MNT" "$DAEMON_PID"
}
ml_both nano_save_pattern_is_stored

do_rm_deletes_the_record()
{
	seed_users
	ml_mount "$MNT"
	atf_check rm "$MNT/users/bob.json"
	record_absent bob
	record_is ada '.name == "Ada"'
	atf_check -o inline:'ada.json\n' ls "$MNT/users"
	atf_check -s not-exit:0 -e match:'No such file' cat "$MNT/users/bob.json"
	ml_unmount "$MNT" "$DAEMON_PID"
}
ml_both rm_deletes_the_record

do_mv_renames_the_record()
{
	seed_users
	ml_mount "$MNT"
	atf_check mv "$MNT/users/bob.json" "$MNT/users/robert.json"
	record_is robert '.id == "robert" and .name == "Bob" and .age == 41'
	record_absent bob
	atf_check -o inline:'ada.json\nrobert.json\n' ls "$MNT/users"
	ml_unmount "$MNT" "$DAEMON_PID"
}
ml_both mv_renames_the_record

do_grep_and_find_walk_the_tree()
{
	seed_users
	ml_mount "$MNT"
	atf_check -o inline:"$MNT/users/ada.json\n" grep -rl '"Ada"' "$MNT"
	atf_check -o match:'"Bob"' grep -r '"Bob"' "$MNT/users"
	atf_check -o inline:"$MNT/users/ada.json\n$MNT/users/bob.json\n" \
	    -x "find '$MNT/users' -maxdepth 1 -name '*.json' ! -name '.*' | sort"
	atf_check -o match:"^$MNT/users\$" find "$MNT" -type d -name users
	ml_unmount "$MNT" "$DAEMON_PID"
}
ml_both grep_and_find_walk_the_tree

# ---- refused writes -----------------------------------------------------------------

do_invalid_json_is_refused_with_einval()
{
	seed_users
	ml_cli get users ada >ada-before.json
	ml_mount "$MNT"
	printf '{"name": "Ada", ' >bad.json
	atf_check -s not-exit:0 -e match:'Invalid argument' cp bad.json "$MNT/users/ada.json"
	# the reason is in /.errors
	jq -e -s 'map(select(.path == "/users/ada.json" and .errno == 22)) | length >= 1' \
	    "$MNT/.errors" >/dev/null || ml_fail "no EINVAL line for /users/ada.json in /.errors: $(cat "$MNT/.errors")"
	# and S3 still holds the record as it was
	ml_cli get users ada >ada-after.json
	atf_check -o empty diff ada-before.json ada-after.json
	# a schema violation (name is required) is refused the same way
	printf '{"age": 3}\n' >noname.json
	atf_check -s not-exit:0 -e match:'Invalid argument' cp noname.json "$MNT/users/eve.json"
	record_absent eve
	# the refused content stays in the files until fixed: leaving it at
	# unmount is reported (status 1), and S3 still holds the old record
	ml_unmount "$MNT" "$DAEMON_PID" 1
	grep -q 'a pending write could not be stored' "$MNT.log" ||
	    ml_fail "no report of the refused write at unmount: $(tail -n 5 "$MNT.log")"
	ml_cli get users ada >ada-end.json
	atf_check -o empty diff ada-before.json ada-end.json
	record_absent eve
}
ml_both invalid_json_is_refused_with_einval

do_ro_mount_refuses_writes()
{
	seed_users
	ml_mount "$MNT" -o ro
	atf_check -o match:'"Ada"' cat "$MNT/users/ada.json"
	printf '{"name":"Zed"}\n' >zed.json
	atf_check -s not-exit:0 -e match:'Read-only file system' cp zed.json "$MNT/users/zed.json"
	atf_check -s not-exit:0 -e match:'Read-only file system' rm "$MNT/users/ada.json"
	record_absent zed
	record_is ada '.name == "Ada"'
	ml_unmount "$MNT" "$DAEMON_PID"
}
ml_one ro_mount_refuses_writes local

do_chmod_chown_and_links_are_refused()
{
	seed_users
	ml_mount "$MNT"
	f=$MNT/users/ada.json
	atf_check -s not-exit:0 -e match:'Operation not permitted' chmod 0600 "$f"
	atf_check -s not-exit:0 -e match:'Operation not permitted' chown 1234 "$f"
	atf_check -s not-exit:0 -e match:'Operation not permitted' ln "$f" "$MNT/users/hard.json"
	atf_check -s not-exit:0 -e match:'Operation not permitted' ln -s ada.json "$MNT/users/soft.json"
	atf_check -s not-exit:0 -e match:'Operation not permitted' mkfifo "$MNT/users/fifo"
	# touch (utimensat) succeeds and changes nothing
	ml_cli get users ada >before.json
	atf_check touch "$f"
	ml_cli get users ada >after.json
	atf_check -o empty diff before.json after.json
	ml_unmount "$MNT" "$DAEMON_PID"
}
ml_one chmod_chown_and_links_are_refused local

do_uid_gid_umask_set_owners_and_modes()
{
	seed_users
	ml_mount "$MNT" -o uid=1234,gid=4321,umask=027
	atf_check -o inline:'1234 4321 640\n' stat -c '%u %g %a' "$MNT/users/ada.json"
	atf_check -o inline:'1234 4321 750\n' stat -c '%u %g %a' "$MNT/users"
	ml_unmount "$MNT" "$DAEMON_PID"
}
ml_one uid_gid_umask_set_owners_and_modes local

do_passphrase_file_decrypts_secret_fields()
{
	printf '{"attributes": {"name": "string", "password": "secret|optional"}, "timestamps": false}' >def.json
	S3DB_PASSPHRASE=hunter2 "$S3DB_CLI" "$CLI_C" schema users <def.json >/dev/null ||
	    ml_fail "cannot define the resource"
	printf '{"id": "a", "name": "A", "password": "pw123"}' |
	    S3DB_PASSPHRASE=hunter2 "$S3DB_CLI" "$CLI_C" put users >/dev/null || ml_fail "cannot put"
	ml_write_private pass hunter2
	ml_mount "$MNT" -o passphrase_file="$WORK/pass"
	ml_jq_true "$MNT/users/a.json" '.password == "pw123"'
	ml_unmount "$MNT" "$DAEMON_PID"
	# an unreadable passphrase file stops the mount, with the reason
	atf_check -s exit:2 -e match:'passphrase_file .*nope: No such file' \
	    "$S3DBFS" "$DAEMON_C" "$MNT" -f -o passphrase_file="$WORK/nope"
}
ml_one passphrase_file_decrypts_secret_fields local

# ---- what must never be lost -----------------------------------------------------------

do_sigterm_stores_a_pending_write_and_unmounts()
{
	seed_users
	ml_mount "$MNT"
	exec 3>"$MNT/users/pend.json"
	printf '{"name":"Pending","age":1}' >&3
	kill -TERM "$DAEMON_PID"
	wait "$DAEMON_PID"
	status=$?
	exec 3>&-
	[ $status -eq 0 ] || ml_fail "s3dbfs exited $status after SIGTERM: $(tail -n 20 "$MNT.log")"
	ml_is_mounted "$MNT" && ml_fail "$MNT is still mounted after SIGTERM"
	record_is pend '.name == "Pending" and .age == 1'
	grep -q 'unmounted' "$MNT.log" || ml_fail "no 'unmounted' line: $(tail -n 20 "$MNT.log")"
}
ml_both sigterm_stores_a_pending_write_and_unmounts

# closed_at_least N: ./closed.txt names N files or more.
closed_at_least()
{
	[ "$(wc -l <closed.txt)" -ge "$1" ]
}

do_kill_9_keeps_every_closed_file()
{
	seed_users
	ml_mount "$MNT"
	cat >writer.pl <<'EOF'
use Fcntl;
$| = 1;
my ($dir, $n) = @ARGV;
for my $i (1 .. $n) {
	sysopen(my $fh, "$dir/w$i.json", O_WRONLY | O_CREAT | O_TRUNC, 0644) or exit 0;
	defined(syswrite($fh, "{\"name\":\"w$i\",\"age\":$i}")) or exit 0;
	close($fh) or exit 0;
	print "w$i\n";   # only once close() succeeded
}
EOF
	: >closed.txt
	perl writer.pl "$MNT/users" 100000 >>closed.txt 2>writer.err &
	writer=$!
	ml_wait_until 30 closed_at_least 5 ||
	    ml_fail "the writer closed fewer than 5 files in 30 s: $(cat writer.err)"
	kill -KILL "$DAEMON_PID"
	wait "$writer"
	# the dead mount stays; mounting over it is refused with what to do
	# (daemon mode: were it wrongly accepted, the command still returns)
	atf_check -s exit:1 -e match:'already mounted.*fusermount3 -u' \
	    "$S3DBFS" "$DAEMON_C" "$MNT" ${DAEMON_OPTS:+-o "$DAEMON_OPTS"}
	fusermount3 -uz "$MNT"
	n=$(wc -l <closed.txt)
	[ "$n" -ge 5 ] || ml_fail "only $n files closed"
	for id in $(cat closed.txt); do
		record_is "$id" ".name == \"$id\""
	done
}
ml_both kill_9_keeps_every_closed_file

# ---- caches -------------------------------------------------------------------------------

# second_mount_shows_the_change: mnt2 shows ada's new age and fay.
second_mount_shows_the_change()
{
	jq -e '.age == 50' "$WORK/mnt2/users/ada.json" >/dev/null 2>&1 &&
	    [ -f "$WORK/mnt2/users/fay.json" ]
}

do_second_mount_sees_a_change_within_its_ttl()
{
	seed_users
	ttl="record_ttl=1,dir_ttl=1,attr_timeout=1,entry_timeout=1,negative_timeout=1"
	ml_mount "$MNT" -o "$ttl"
	pid_a=$DAEMON_PID
	ml_mount "$WORK/mnt2" -o "$ttl"
	pid_b=$DAEMON_PID
	ml_jq_true "$WORK/mnt2/users/ada.json" '.age == 36'
	atf_check -o inline:'ada.json\nbob.json\n' ls "$WORK/mnt2/users"
	# change a record and add one through the first mount
	jq '.age = 50' "$MNT/users/ada.json" >ada50.json
	atf_check cp ada50.json "$MNT/users/ada.json"
	printf '{"name":"Fay"}\n' >fay.json
	atf_check cp fay.json "$MNT/users/fay.json"
	start=$(date +%s)
	ml_wait_until 5 second_mount_shows_the_change ||
	    ml_fail "the second mount still shows the old data after 5 s (TTLs 1 s)"
	echo "seen after $(( $(date +%s) - start )) s"
	ml_unmount "$WORK/mnt2" "$pid_b"
	ml_unmount "$MNT" "$pid_a"
}
ml_both second_mount_sees_a_change_within_its_ttl

# ls -l of a directory: the listing hands the kernel every entry's
# attributes (readdirplus), so it looks no name up one by one — the FUSE
# debug log (-d) shows no LOOKUP of a record while ls -l runs, cold.
do_ls_l_looks_up_no_record_one_by_one()
{
	seed_users
	ml_mount "$MNT"
	for i in $(seq 1 40); do
		printf '{"name":"u%s"}\n' "$i" >"$MNT/users/u$i.json" || ml_fail "create u$i"
	done
	ml_unmount "$MNT" "$DAEMON_PID"
	ml_mount "$MNT" -d
	before=$(wc -l <"$MNT.log")
	atf_check -o match:'u40\.json' ls -l "$MNT/users"
	tail -n +"$((before + 1))" "$MNT.log" >ls.log
	n=$(grep -c '^LOOKUP /users/u[0-9]*\.json' ls.log || true)
	[ "$n" -eq 0 ] || ml_fail "ls -l looked up $n records one by one: $(grep -m 3 '^LOOKUP' ls.log)"
	grep -q '^readdir\|READDIRPLUS' ls.log || ml_fail "no readdir in the debug log: $(head -n 20 ls.log)"
	ml_unmount "$MNT" "$DAEMON_PID"
}
ml_both ls_l_looks_up_no_record_one_by_one

# A new record written by the shell (printf > f) or by cp goes to the
# daemon without the kernel asking for its security.capability first: a
# write-only descriptor bypasses the page cache (direct_io), so the FUSE
# debug log shows no GETXATTR while the files are written — and the
# records are there, whole; an append (>>) still lands at the end.
do_a_new_file_written_costs_no_getxattr_request()
{
	seed_users
	ml_mount "$MNT" -d
	before=$(wc -l <"$MNT.log")
	printf '{"name":"Gil"}\n' >"$MNT/users/gil.json" || ml_fail "printf > gil.json"
	printf '{"name":"Hal"}\n' >hal.json
	atf_check cp hal.json "$MNT/users/hal.json"
	# an append lands at the end (a newline after the document keeps it valid)
	printf '\n' >>"$MNT/users/ada.json" || ml_fail "appending a newline to ada.json was refused"
	tail -n +"$((before + 1))" "$MNT.log" >write.log
	grep -q '^create /users/hal.json\|CREATE' write.log || ml_fail "no create in the debug log: $(head -n 20 write.log)"
	n=$(grep -c 'getxattr /users/.* security\.capability' write.log || true)
	[ "$n" -eq 0 ] || ml_fail "the kernel asked $n getxattr: $(grep -m 3 'getxattr' write.log)"
	ml_unmount "$MNT" "$DAEMON_PID"
	record_is gil '.name == "Gil"'
	record_is hal '.name == "Hal"'
	record_is ada '.name == "Ada" and .age == 36'
}
ml_both a_new_file_written_costs_no_getxattr_request

do_remount_with_cache_dir_costs_only_list_requests()
{
	seed_users
	for id in c1 c2 c3 c4 c5; do
		put_user "$id" "{\"name\":\"$id\"}"
	done
	# a record read within 2 s of its LastModified second cannot be
	# confirmed by a listing later (S3 dates have whole seconds): let the
	# records age, as records being remounted have
	sleep 2.5
	cache="cache_dir=$WORK/cache"
	ml_mount "$MNT" -o "$cache"
	atf_check -o ignore ls -l "$MNT/users"
	atf_check -o ignore -x "cat '$MNT'/users/*.json"
	ml_unmount "$MNT" "$DAEMON_PID"
	ml_front_log_clear
	ml_mount "$MNT" -o "$cache"
	atf_check -o ignore ls -l "$MNT/users"
	atf_check -o match:'"c5"' -x "cat '$MNT'/users/*.json"
	ml_unmount "$MNT" "$DAEMON_PID"
	ml_front_log mine.json "$PREFIX/"
	# the catalog (s3db.json) is read at open; every record comes from
	# the cache, confirmed by the listing
	jq -e '[.[] | select(.command != "ListObjectsV2" and (.key | endswith("/s3db.json") | not))]
	    | length == 0' mine.json >/dev/null ||
	    ml_fail "requests other than LIST after the remount: $(jq -c '[.[] | {command, key}]' mine.json)"
	jq -e '[.[] | select(.command == "ListObjectsV2")] | length >= 1' mine.json >/dev/null ||
	    ml_fail "no LIST at all: $(jq -c . mine.json)"
}
ml_one remount_with_cache_dir_costs_only_list_requests s3

# ---- the configuration file ----------------------------------------------------------------

# (configuration files are written with ml_write_private: by rename, as
# editors save)

# mode_is MODE FILE: FILE's permission bits are MODE (octal, as stat %a).
mode_is()
{
	[ "$(stat -c %a "$2")" = "$1" ]
}

do_config_change_is_applied_live_and_an_invalid_one_rejected()
{
	seed_users
	ml_write_private config.json "{\"connectionString\": \"$CLI_C\", \"mount\": {\"record_ttl\": 5, \"log_level\": \"info\"}}"
	ml_start "$MNT" "$S3DBFS" -o config=config.json "$MNT" -f
	ml_jq_true "$MNT/.status" '.cache.ttlSeconds.record == 5'

	# a live option: applied, and the log says what changed
	ml_write_private config.json "{\"connectionString\": \"$CLI_C\", \"mount\": {\"record_ttl\": 2, \"log_level\": \"info\"}}"
	ml_wait_log "$MNT.log" 'info: config: record_ttl 5 -> 2$'
	ml_jq_true "$MNT/.status" '.cache.ttlSeconds.record == 2'

	# an invalid file: rejected with the file and the key, nothing changes
	ml_write_private config.json "{\"connectionString\": \"$CLI_C\", \"mount\": {\"record_ttl\": \"fast\"}}"
	ml_wait_log "$MNT.log" 'config\.json: mount\.record_ttl: must be a number.*rejected'
	ml_jq_true "$MNT/.status" '.cache.ttlSeconds.record == 2'
	atf_check -o match:'"Ada"' cat "$MNT/users/ada.json"
	printf '{ not json' >config.json
	ml_wait_log "$MNT.log" 'config\.json: .*invalid JSON.*rejected'

	# written in place (no rename) works too; FUSE timeouts are live
	(umask 077 && printf '%s\n' "{\"connectionString\": \"$CLI_C\", \"mount\": {\"record_ttl\": 2, \"attr_timeout\": 3}}" >config.json)
	ml_wait_log "$MNT.log" 'info: config: attr_timeout 1 -> 3$'
	# the vfs's options are live too: the new umask shows once the
	# kernel's attributes expire
	ml_write_private config.json "{\"connectionString\": \"$CLI_C\", \"mount\": {\"record_ttl\": 2, \"attr_timeout\": 3, \"umask\": \"077\"}}"
	ml_wait_log "$MNT.log" 'info: config: umask 022 -> 077$'
	ml_wait_until 8 mode_is 600 "$MNT/users/ada.json" ||
	    ml_fail "ada.json is still mode $(stat -c %a "$MNT/users/ada.json") 8 s after umask 077"
	# an option that needs a remount is reported as such
	ml_write_private config.json "{\"connectionString\": \"$CLI_C\", \"mount\": {\"record_ttl\": 2, \"attr_timeout\": 3, \"umask\": \"077\", \"max_threads\": 40}}"
	ml_wait_log "$MNT.log" 'config: max_threads 64 -> 40: takes effect at the next mount'
	ml_unmount "$MNT" "$DAEMON_PID"
}
ml_one config_change_is_applied_live_and_an_invalid_one_rejected local

do_config_errors_name_the_file_and_the_key()
{
	seed_users
	ml_write_private bad1.json "{\"connectionString\": \"$CLI_C\", \"plugins\": [\"CostsPlugin\", {\"name\": \"CachePlugin\", \"options\": {\"ttl\": \"long\"}}]}"
	atf_check -s exit:2 -e match:'bad1\.json: plugins\[1\]\.options\.ttl: must be a number' \
	    "$S3DBFS" -o config=bad1.json "$MNT" -f
	ml_write_private bad2.json '{"plugins": ["CachePlugn"]}'
	atf_check -s exit:2 -e match:"bad2\\.json: plugins\\[0\\]: unknown plugin 'CachePlugn'" \
	    "$S3DBFS" -o config=bad2.json "$MNT" -f
	ml_write_private bad3.json '{"connectionstring": "file:///x"}'
	atf_check -s exit:2 -e match:'bad3\.json: connectionstring: unknown key' \
	    "$S3DBFS" -o config=bad3.json "$MNT" -f
	ml_write_private bad4.json '{"mount": {"umask": 18}}'
	atf_check -s exit:2 -e match:'bad4\.json: mount\.umask: must be an octal string' \
	    "$S3DBFS" -o config=bad4.json "$MNT" -f
	ml_write_private bad5.json '{"plugins": [{"name": "MetricsPlugin", "options": {"sampleRate": 2}}]}'
	atf_check -s exit:2 -e match:'bad5\.json: plugins\[0\]\.options\.sampleRate: must be a number from 0 to 1' \
	    "$S3DBFS" -o config=bad5.json "$MNT" -f
	# a secret in a file others can read is refused, and not echoed
	ml_write_private open.json '{"connectionString": "s3://AKIDX:Zs3cr3tZ@bucket/p"}'
	chmod 0644 open.json
	atf_check -s exit:2 -e save:open.err "$S3DBFS" -o config=open.json "$MNT" -f
	grep -q 'open\.json: holds a secret' open.err || ml_fail "no 'holds a secret': $(cat open.err)"
	grep -q Zs3cr3tZ open.err && ml_fail "the secret is in the message"
	ml_is_mounted "$MNT" && ml_fail "a refused configuration was mounted"

	# a valid one: plugins are kept and logged, unknown plugin options
	# warned about, and -o wins over the file
	ml_write_private good.json "{\"connectionString\": \"$CLI_C\", \"plugins\": [\"CostsPlugin\", {\"name\": \"CachePlugin\", \"options\": {\"ttl\": 1000, \"bogus\": 1}}], \"mount\": {\"record_ttl\": 5}}"
	ml_start "$MNT" "$S3DBFS" -o config=good.json "$MNT" -f -o record_ttl=3
	ml_jq_true "$MNT/.status" '.cache.ttlSeconds.record == 3'
	grep -q 'plugin CachePlugin' "$MNT.log" || ml_fail "plugins not logged: $(cat "$MNT.log")"
	grep -q 'plugins\[1\]\.options\.bogus: not an option of CachePlugin' "$MNT.log" ||
	    ml_fail "no warning about the unknown option: $(cat "$MNT.log")"
	ml_unmount "$MNT" "$DAEMON_PID"
}
ml_one config_errors_name_the_file_and_the_key local

# ---- credentials and secrets -------------------------------------------------------------

do_passwd_file_must_be_private()
{
	printf 'AKIDX:Zs3cr3tZ\n' >passwd-open
	chmod 0644 passwd-open
	atf_check -s exit:2 -e save:err "$S3DBFS" "$DAEMON_C" "$MNT" -f -o passwd_file=passwd-open
	grep -q 'passwd_file .*passwd-open: mode 0644' err || ml_fail "wrong message: $(cat err)"
	grep -q Zs3cr3tZ err && ml_fail "the secret is in the message"
	ml_is_mounted "$MNT" && ml_fail "mounted with an open passwd_file"
	return 0
}
ml_one passwd_file_must_be_private s3

do_secret_never_reaches_ps_or_the_log()
{
	seed_users
	# the secret on the command line, on purpose
	ml_start "$MNT" "$S3DBFS" "$CLI_C" "$MNT" -f -o log_level=debug
	atf_check -o match:'"Ada"' cat "$MNT/users/ada.json"
	enc=$(jq -rn --arg s "$S3DB_TEST_SECRET_KEY" '$s | @uri')
	tr '\0' ' ' <"/proc/$DAEMON_PID/cmdline" >cmdline
	grep -qF "$S3DB_TEST_ACCESS_KEY" cmdline || ml_fail "cmdline lost the access key: $(cat cmdline)"
	for s in "$enc" "$S3DB_TEST_SECRET_KEY"; do
		grep -qF -- "$s" cmdline && ml_fail "the secret is in ps: $(cat cmdline)"
		grep -qF -- "$s" /proc/mounts && ml_fail "the secret is in /proc/mounts"
		grep -qF -- "$s" "$MNT.log" && ml_fail "the secret is in the log"
		grep -qF -- "$s" "$MNT/.status" && ml_fail "the secret is in /.status"
	done
	awk -v m="$MNT" '$2 == m' /proc/mounts | grep -qF '***' ||
	    ml_fail "/proc/mounts does not show the masked source"
	ml_unmount "$MNT" "$DAEMON_PID"
}
ml_one secret_never_reaches_ps_or_the_log s3

# ---- daemon mode, errors, the mount helper ---------------------------------------------------

# daemon_pid DIR: the pid of the s3dbfs serving DIR.
daemon_pid()
{
	for d in /proc/[0-9]*; do
		tr '\0' '\n' <"$d/cmdline" 2>/dev/null | grep -qx -- "$1" || continue
		tr '\0' '\n' <"$d/cmdline" 2>/dev/null | head -n 1 | grep -q s3dbfs || continue
		echo "${d#/proc/}"
		return 0
	done
	return 1
}

do_daemon_mode_returns_once_mounted()
{
	seed_users
	atf_check -s exit:0 -o empty -e empty "$S3DBFS" "$DAEMON_C" "$MNT" -o log_level=info
	ml_is_mounted "$MNT" || ml_fail "s3dbfs returned 0 but $MNT is not mounted"
	pid=$(daemon_pid "$MNT") || ml_fail "no daemon process for $MNT"
	echo "$pid" >>daemon.pids
	atf_check -o match:'"Ada"' cat "$MNT/users/ada.json"
	ml_unmount "$MNT" "$pid" detached

	# start-up errors reach the terminal, with their exit status
	atf_check -s exit:1 -e match:'mount point .*nowhere: No such file' \
	    "$S3DBFS" "$DAEMON_C" "$WORK/nowhere"
	atf_check -s exit:2 -e match:'-o record_ttl: must be a number' \
	    "$S3DBFS" "$DAEMON_C" "$MNT" -o record_ttl=soon
	atf_check -s exit:2 -e match:'unknown option' "$S3DBFS" "$DAEMON_C" "$MNT" -o frobnicate
	atf_check -s exit:2 -e match:'no MOUNTPOINT' "$S3DBFS" -o log_level=info
	atf_check -s exit:4 -e match:'cannot open the database' \
	    "$S3DBFS" "http://AK:SK@127.0.0.1:1/bucket/p" "$MNT" -o retries=0,timeout=2
	ml_is_mounted "$MNT" && ml_fail "mounted after a failed start"
	return 0
}
ml_one daemon_mode_returns_once_mounted local

do_mount_helper_takes_mount_8_arguments()
{
	[ -x "${S3DBFS_MOUNT_HELPER}" ] ||
	    ml_fail "S3DBFS_MOUNT_HELPER='${S3DBFS_MOUNT_HELPER}' is not an executable"
	seed_users
	# fake (-f) only prints what would run: fstab-only options are gone
	atf_check -s exit:0 -e save:fake.err "$S3DBFS_MOUNT_HELPER" "$DAEMON_C" "$MNT" -f \
	    -o rw,_netdev,noauto,nofail,x-systemd.automount,record_ttl=2
	grep -q -- "-o rw,record_ttl=2\$" fake.err || ml_fail "wrong translation: $(cat fake.err)"
	ml_is_mounted "$MNT" && ml_fail "-f (fake) mounted"
	# a real mount, as mount(8) would call the helper
	atf_check -s exit:0 "$S3DBFS_MOUNT_HELPER" "$DAEMON_C" "$MNT" -n -o _netdev,nofail,record_ttl=2
	ml_is_mounted "$MNT" || ml_fail "the helper did not mount"
	pid=$(daemon_pid "$MNT") || ml_fail "no daemon for $MNT"
	echo "$pid" >>daemon.pids
	ml_jq_true "$MNT/.status" '.cache.ttlSeconds.record == 2'
	ml_unmount "$MNT" "$pid" detached
	# a config file as the source
	ml_write_private db.json "{\"connectionString\": \"$CLI_C\"}"
	atf_check -s exit:0 "$S3DBFS_MOUNT_HELPER" "$WORK/db.json" "$MNT" -o noauto
	ml_is_mounted "$MNT" || ml_fail "the helper did not mount the config file"
	pid=$(daemon_pid "$MNT") || ml_fail "no daemon for $MNT"
	echo "$pid" >>daemon.pids
	atf_check -o match:'"Bob"' cat "$MNT/users/bob.json"
	ml_unmount "$MNT" "$pid" detached
}
ml_one mount_helper_takes_mount_8_arguments local

# ---- POSIX behaviours users rely on ------------------------------------------------------

# seed_regions: resource "users" as seed_users, with a partition by region
# and a nested one by age and region (nested in sorted field order).
seed_regions()
{
	cat >users-def.json <<'EOF'
{
  "attributes": {
    "name": "string|required",
    "email": "string|optional",
    "age": "number|optional",
    "region": "string|optional"
  },
  "timestamps": false,
  "partitions": {
    "byRegion": { "fields": { "region": "string" } },
    "byRegionAge": { "fields": { "region": "string", "age": "number" } }
  }
}
EOF
	ml_cli schema users <users-def.json >/dev/null 2>seed.err || ml_fail "schema: $(cat seed.err)"
	put_user ada '{"name":"Ada","email":"ada@example.com","age":36,"region":"eu"}'
	put_user bob '{"name":"Bob","email":"bob@example.com","age":41,"region":"us"}'
}

# 4 writers each replace their own 2 records in a loop (printf > tmp && mv,
# the atomic way), while 4 readers cat and jq every record: no reader ever
# reads a torn or invalid file, and S3 ends with each record's last
# successfully stored version.
do_concurrent_readers_and_writers_keep_every_record_whole()
{
	seed_users
	for w in 1 2 3 4; do
		put_user "w${w}a" "{\"name\":\"w$w\",\"age\":0}"
		put_user "w${w}b" "{\"name\":\"w$w\",\"age\":0}"
	done
	ml_mount "$MNT"
	cat >writer.sh <<'EOF'
w=$1; dir=$2; rounds=$3
for k in $(seq 1 "$rounds"); do
	for r in a b; do
		printf '{"name":"w%s","age":%s,"email":"w%s%s@example.com"}\n' "$w" "$k" "$w" "$r" \
		    >"$dir/.w$w.tmp" && mv "$dir/.w$w.tmp" "$dir/w$w$r.json" && echo "$k" >"last.w$w$r"
	done
done
EOF
	cat >reader.sh <<'EOF'
r=$1; dir=$2
while [ ! -f writers.done ]; do
	for f in "$dir"/w*.json; do
		if ! cat "$f" >"read.$r" 2>"read.$r.err"; then
			echo "cat $f: $(cat "read.$r.err")" >>"bad.$r"
		elif ! jq -e '.name and (.age | type == "number")' "read.$r" >/dev/null 2>&1; then
			echo "torn $f: $(head -c 200 "read.$r")" >>"bad.$r"
		fi
	done
	echo x >>"rounds.$r"
done
EOF
	readers=
	for r in 1 2 3 4; do
		sh reader.sh "$r" "$MNT/users" &
		readers="$readers $!"
	done
	writers=
	for w in 1 2 3 4; do
		sh writer.sh "$w" "$MNT/users" 12 &
		writers="$writers $!"
	done
	for p in $writers; do wait "$p"; done
	touch writers.done
	for p in $readers; do wait "$p"; done
	for r in 1 2 3 4; do
		[ ! -s "bad.$r" ] || ml_fail "reader $r: $(head -n 5 "bad.$r")"
		[ -s "rounds.$r" ] || ml_fail "reader $r read nothing"
	done
	for w in 1 2 3 4; do
		for r in a b; do
			[ -f "last.w$w$r" ] || ml_fail "writer $w never stored w$w$r"
			record_is "w$w$r" ".age == $(cat "last.w$w$r") and .email == \"w$w$r@example.com\""
		done
	done
	atf_check -o inline:'ada.json\nbob.json\nw1a.json\nw1b.json\nw2a.json\nw2b.json\nw3a.json\nw3b.json\nw4a.json\nw4b.json\n' \
	    ls "$MNT/users"
	ls -A "$MNT/users" | grep -q 'fuse_hidden\|\.tmp' && ml_fail "left behind: $(ls -A "$MNT/users")"
	ml_unmount "$MNT" "$DAEMON_PID"
}
ml_both concurrent_readers_and_writers_keep_every_record_whole

# rm of an open file: fstat, read and write on the descriptor still work
# (link count 0), and the record stays deleted after the close.
do_an_unlinked_open_file_stays_usable_until_closed()
{
	seed_users
	ml_mount "$MNT"
	cat >unlinked.pl <<'EOF'
use Fcntl;
my ($path, $text) = @ARGV;
sysopen(my $fh, $path, O_RDWR) or die "open: $!\n";
my $was = (stat($fh))[7];
unlink($path) or die "unlink: $!\n";
die "still there\n" if -e $path;
my @st = stat($fh) or die "fstat after unlink: $!\n";
die "nlink $st[3]\n" if $st[3] != 0;
die "size $st[7], was $was\n" if $st[7] != $was;
sysseek($fh, 0, 0);
sysread($fh, my $buf, 64) > 0 or die "read: $!\n";
die "read '$buf'\n" unless $buf =~ /^\{/;
sysseek($fh, 0, 0);
defined(syswrite($fh, $text)) or die "write: $!\n";
sysseek($fh, 0, 0);
sysread($fh, $buf, length $text) == length $text or die "read back: $!\n";
die "read back '$buf'\n" if $buf ne $text;
close($fh) or die "close: $!\n";
print "ok\n";
EOF
	atf_check -o inline:'ok\n' perl unlinked.pl "$MNT/users/bob.json" '{"name":"Zombie"}'
	record_absent bob
	atf_check -o inline:'ada.json\n' ls "$MNT/users"
	# a scratch file likewise
	echo '{"note": 1}' >"$MNT/users/notes.tmp"
	atf_check -o inline:'ok\n' perl unlinked.pl "$MNT/users/notes.tmp" '{"note":2}'
	atf_check -o inline:'ada.json\n' ls "$MNT/users"
	ls -A "$MNT/users" | grep -q fuse_hidden && ml_fail "a hidden file is listed: $(ls -A "$MNT/users")"
	ml_unmount "$MNT" "$DAEMON_PID"
	record_absent bob
	record_is ada '.name == "Ada"'
}
ml_both an_unlinked_open_file_stays_usable_until_closed

# creating and removing files moves the directory's mtime and ctime
# (pjdfstest open/00.t).
do_directory_times_follow_changes()
{
	seed_users
	ml_mount "$MNT"
	m0=$(stat -c %Y "$MNT/users")
	c0=$(stat -c %Z "$MNT/users")
	sleep 1.1
	printf '{"name":"Cy"}' >"$MNT/users/cy.json"
	m1=$(stat -c %Y "$MNT/users")
	c1=$(stat -c %Z "$MNT/users")
	[ "$m1" -gt "$m0" ] || ml_fail "mtime $m0 -> $m1 after a create"
	[ "$c1" -gt "$c0" ] || ml_fail "ctime $c0 -> $c1 after a create"
	sleep 1.1
	rm "$MNT/users/cy.json"
	m2=$(stat -c %Y "$MNT/users")
	[ "$m2" -gt "$m1" ] || ml_fail "mtime $m1 -> $m2 after a remove"
	ml_unmount "$MNT" "$DAEMON_PID"
}
ml_both directory_times_follow_changes

# the partition tree holds symbolic links: grep -r and find see each
# record once; cat, jq and readlink through the links work.
do_partition_entries_are_links_to_the_records()
{
	seed_regions
	ml_mount "$MNT"
	atf_check -o inline:"$MNT/users/ada.json\n" grep -rl '"Ada"' "$MNT"
	atf_check -o inline:'1\n' -x "grep -r '\"Bob\"' '$MNT' | wc -l"
	atf_check -o inline:'2\n' -x "find '$MNT' -type f -name '*.json' ! -name '.*' | wc -l"
	link=$MNT/users/.partitions/byRegion/region=eu/ada.json
	atf_check -o inline:'../../../ada.json\n' readlink "$link"
	[ -L "$link" ] || ml_fail "$link is not a symbolic link"
	atf_check -o inline:"$MNT/users/ada.json\n" readlink -f "$link"
	cat "$link" >via-link.json || ml_fail "cat $link"
	atf_check -o empty cmp via-link.json "$MNT/users/ada.json"
	ml_jq_true "$link" '.name == "Ada"'
	nested=$MNT/users/.partitions/byRegionAge/age=41/region=us/bob.json
	atf_check -o inline:'../../../../bob.json\n' readlink "$nested"
	ml_jq_true "$nested" '.name == "Bob"'
	# the tree stays read-only
	atf_check -s not-exit:0 -e match:'Read-only' rm "$link"
	atf_check -s not-exit:0 -e ignore touch "$MNT/users/.partitions/byRegion/region=eu/new.json"
	atf_check -s not-exit:0 -e match:'Read-only' ln -s ../../../bob.json "$MNT/users/.partitions/byRegion/region=eu/bob.json"
	atf_check -s not-exit:0 -e match:'Read-only' mkfifo "$MNT/users/.partitions/byRegion/region=eu/fifo"
	record_is ada '.name == "Ada"'
	ml_unmount "$MNT" "$DAEMON_PID"
}
ml_both partition_entries_are_links_to_the_records

# ---- contrib/examples ----------------------------------------------------------------------

atf_test_case example_configs_are_valid
example_configs_are_valid_head()
{
	atf_set require.progs "jq"
}
example_configs_are_valid_body()
{
	setup
	n=0
	for f in "$S3DBFS_CONTRIB"/examples/s3dbfs-*.json; do
		[ -f "$f" ] || continue
		n=$((n + 1))
		# the configuration is accepted; only the (missing) mount point fails
		atf_check -s exit:1 -e match:'mount point .*nowhere: No such file' \
		    "$S3DBFS" -o config="$f" "$WORK/nowhere" -f
	done
	[ $n -ge 2 ] || ml_fail "expected at least 2 contrib/examples/s3dbfs-*.json, found $n"
	# plugins.json names the webhook .so where make install puts it: the
	# parser only needs a regular file there (t_valgrind mounts with the
	# example and the built .so); no option may draw a warning
	f="$S3DBFS_CONTRIB/examples/plugins.json"
	[ -f "$f" ] || ml_fail "$f is missing"
	: >"$WORK/webhook.so"
	jq --arg so "$WORK/webhook.so" \
	    '.plugins |= map(if type == "object" and has("path") then .path = $so else . end)' \
	    "$f" >plugins.json || ml_fail "$f is not JSON"
	jq -e '[.plugins[] | .name // .path] | length == 4' plugins.json >/dev/null ||
	    ml_fail "$f: expected three built-in plugins and a .so: $(jq -c .plugins plugins.json)"
	atf_check -s exit:1 -e match:'mount point .*nowhere: No such file' -e not-match:'warn|error' \
	    "$S3DBFS" -o config="$WORK/plugins.json" "$WORK/nowhere" -f
}
ML_CASES="$ML_CASES example_configs_are_valid"

atf_init_test_cases()
{
	ml_add_cases
}
