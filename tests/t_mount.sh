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
#
# Mounting needs root (/dev/fuse is 0600).  Every case that mounts has a
# cleanup that lazily unmounts (fusermount3 -uz) and kills its daemons.

# ---- set-up ---------------------------------------------------------------------

# fail MESSAGE: fails the case; newlines (from quoted logs) become " | ",
# since ATF wants a one-line reason.
fail()
{
	atf_fail "$(printf '%s' "$*" | tr -s '\n' '|' | sed 's/|/ | /g')"
}

common_head()
{
	atf_set require.user root
	atf_set require.progs "fusermount3 jq perl"
	atf_set timeout 240
}

# setup: checks the programs, makes ./mnt, clears the environment.
setup()
{
	[ -n "${S3DBFS:-}" ] || S3DBFS=$(atf_config_get S3DBFS "")
	[ -n "${S3DB_CLI:-}" ] || S3DB_CLI=$(atf_config_get S3DB_CLI "")
	[ -n "${S3DBFS_CONTRIB:-}" ] || S3DBFS_CONTRIB=$(atf_config_get S3DBFS_CONTRIB "")
	[ -x "${S3DBFS}" ] || fail "S3DBFS='${S3DBFS}' is not an executable (the built s3dbfs)"
	[ -x "${S3DB_CLI}" ] || fail "S3DB_CLI='${S3DB_CLI}' is not an executable (the built s3db)"
	[ -d "${S3DBFS_CONTRIB}" ] || fail "S3DBFS_CONTRIB='${S3DBFS_CONTRIB}' is not a directory (contrib/)"
	S3DBFS_MOUNT_HELPER=$S3DBFS_CONTRIB/mount.s3dbfs
	export S3DBFS S3DB_CLI S3DBFS_CONTRIB S3DBFS_MOUNT_HELPER
	unset S3DB_PASSPHRASE S3DB_LOG_LEVEL AWS_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY \
	    AWS_SESSION_TOKEN AWS_REGION AWS_ENDPOINT_URL
	WORK=$(pwd)
	MNT=$WORK/mnt
	mkdir -p "$MNT"
}

# use_local: the database is ./db.  CLI_C is what the CLI opens, DAEMON_C
# what the daemon mounts, DAEMON_OPTS its -o options.
use_local()
{
	CLI_C="file://$WORK/db"
	DAEMON_C=$CLI_C
	DAEMON_OPTS=log_level=info
	BACKEND=local
}

# use_s3: a fresh prefix of the test bucket, through the strict front.  The
# daemon takes its credentials from a passwd_file (mode 0600); the CLI,
# which has none, from a connection string with the percent-encoded secret.
use_s3()
{
	for v in S3DB_TEST_S3_URL S3DB_TEST_S3_BUCKET S3DB_TEST_ACCESS_KEY S3DB_TEST_SECRET_KEY; do
		eval "[ -n \"\${$v:-}\" ]" ||
		    fail "$v is not set: start tests/servers/servers.sh and export its env"
	done
	PREFIX="t/mount-$(atf_get ident)-$$-$(date +%s%N)"
	hostport=${S3DB_TEST_S3_URL#http://}
	enc=$(jq -rn --arg s "$S3DB_TEST_SECRET_KEY" '$s | @uri')
	CLI_C="http://$S3DB_TEST_ACCESS_KEY:$enc@$hostport/$S3DB_TEST_S3_BUCKET/$PREFIX"
	DAEMON_C="http://$hostport/$S3DB_TEST_S3_BUCKET/$PREFIX"
	(umask 077 && printf '%s:%s\n' "$S3DB_TEST_ACCESS_KEY" "$S3DB_TEST_SECRET_KEY" >"$WORK/passwd")
	DAEMON_OPTS="log_level=info,passwd_file=$WORK/passwd"
	BACKEND=s3
}

# cli ARGS...: the s3db CLI on the test database.
cli()
{
	"$S3DB_CLI" "$CLI_C" "$@"
}

# jqtrue FILE FILTER: the jq FILTER is true for FILE.
jqtrue()
{
	jq -e "$2" "$1" >/dev/null 2>&1 || fail "$1: jq '$2' is not true: $(head -c 600 "$1")"
}

# record_is ID FILTER: the record ID, read by the CLI, satisfies FILTER.
record_is()
{
	cli get users "$1" >"rec-$1.json" 2>rec.err || fail "s3db get users $1: $(cat rec.err)"
	jqtrue "rec-$1.json" "$2"
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
	cli schema users <users-def.json >/dev/null 2>seed.err || fail "schema: $(cat seed.err)"
	put_user ada '{"name":"Ada","email":"ada@example.com","age":36,"region":"eu"}'
	put_user bob '{"name":"Bob","email":"bob@example.com","age":41,"region":"us"}'
}

# put_user ID JSON: stores a record with the CLI.
put_user()
{
	printf '%s' "$2" | cli put users "$1" >/dev/null 2>seed.err ||
	    fail "s3db put users $1: $(cat seed.err)"
}

# ---- mounting ---------------------------------------------------------------------

# is_mounted DIR: DIR is an s3dbfs mount point.
is_mounted()
{
	awk -v m="$1" '$2 == m && $3 == "fuse.s3dbfs" { f = 1 } END { exit !f }' /proc/mounts
}

# mount_at DIR [ARGS...]: starts the daemon in the foreground on DIR
# (log in DIR.log, pid appended to ./daemon.pids and in $DAEMON_PID) and
# waits until the file system is mounted.
mount_at()
{
	dir=$1
	shift
	mkdir -p "$dir"
	"$S3DBFS" "$DAEMON_C" "$dir" -f ${DAEMON_OPTS:+-o "$DAEMON_OPTS"} "$@" >>"$dir.log" 2>&1 &
	DAEMON_PID=$!
	echo "$DAEMON_PID" >>"$WORK/daemon.pids"
	wait_mounted "$dir" "$DAEMON_PID"
}

# wait_mounted DIR PID: waits (10 s at most) for the mount; fails when the
# daemon exits first.
wait_mounted()
{
	i=0
	while ! is_mounted "$1"; do
		if ! kill -0 "$2" 2>/dev/null; then
			fail "s3dbfs exited before mounting $1: $(tail -n 20 "$1.log" 2>/dev/null)"
		fi
		i=$((i + 1))
		[ $i -le 100 ] || fail "$1 not mounted after 10 s: $(tail -n 20 "$1.log")"
		sleep 0.1
	done
}

# wait_gone PID [SECONDS]: waits for a process to exit (default 15 s).
wait_gone()
{
	i=0
	limit=$(( ${2:-15} * 10 ))
	while kill -0 "$1" 2>/dev/null; do
		i=$((i + 1))
		[ $i -le $limit ] || fail "process $1 still runs after ${2:-15} s"
		sleep 0.1
	done
}

# unmount DIR PID [STATUS]: fusermount3 -u (retried while busy), then waits
# for the daemon to exit; when it is our child, its status must be STATUS
# (default 0; under the sanitizers a leak at exit makes it non-zero).
unmount()
{
	i=0
	while is_mounted "$1"; do
		fusermount3 -u "$1" 2>unmount.err && break
		i=$((i + 1))
		[ $i -le 50 ] || fail "cannot unmount $1: $(cat unmount.err)"
		sleep 0.1
	done
	wait_gone "$2"
	wait "$2" 2>/dev/null
	st=$?
	[ $st -eq "${3:-0}" ] || [ $st -eq 127 ] ||
	    fail "s3dbfs on $1 exited $st at unmount (expected ${3:-0}): $(tail -n 20 "$1.log" 2>/dev/null)"
}

# unmount_all_here: lazily unmounts every mount under the work directory,
# stacked ones included (a dead mount fails stat(), so /proc/mounts is
# read rather than testing the directories).
unmount_all_here()
{
	for round in 1 2 3 4 5; do
		mps=$(awk -v p="$(pwd)/" 'index($2, p) == 1 { print $2 }' /proc/mounts)
		[ -n "$mps" ] || return 0
		for m in $mps; do
			fusermount3 -uz "$m" 2>/dev/null
		done
	done
}

# cleanup_mounts: the ATF cleanup of every mounting case.
cleanup_mounts()
{
	unmount_all_here
	if [ -f daemon.pids ]; then
		for p in $(cat daemon.pids); do
			kill -TERM "$p" 2>/dev/null
		done
		sleep 0.5
		for p in $(cat daemon.pids); do
			kill -KILL "$p" 2>/dev/null
		done
	fi
	unmount_all_here
	return 0
}

# wait_for_log FILE REGEX [SECONDS]: waits until a line of FILE matches.
wait_for_log()
{
	i=0
	limit=$(( ${3:-10} * 10 ))
	until grep -Eq -- "$2" "$1" 2>/dev/null; do
		i=$((i + 1))
		[ $i -le $limit ] || fail "no line matching '$2' in $1 after ${3:-10} s: $(tail -n 15 "$1")"
		sleep 0.1
	done
}

# both NAME: two cases running do_NAME, NAME on the local backend and
# NAME_s3 through S3.
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

# one NAME BACKEND: one case running do_NAME on BACKEND (local or s3).
one()
{
	eval "atf_test_case $1 cleanup
$1_head() { common_head; }
$1_body() { setup; use_$2; do_$1; }
$1_cleanup() { cleanup_mounts; }"
	CASES="$CASES $1"
}

CASES=

# ---- reading ----------------------------------------------------------------------

do_ls_and_cat_show_records_written_by_the_cli()
{
	seed_users
	mount_at "$MNT"
	atf_check -o match:'^users$' ls "$MNT"
	atf_check -o inline:'ada.json\nbob.json\n' ls "$MNT/users"
	atf_check -o match:'ada\.json' ls -l "$MNT/users"
	cp "$MNT/users/ada.json" ada.out
	jqtrue ada.out '.id == "ada" and .name == "Ada" and .age == 36 and .region == "eu"'
	# the file is the CLI's record, pretty, ending in a newline
	cli get users ada | jq -S . >cli.json
	jq -S . ada.out >file.json
	atf_check -o empty diff cli.json file.json
	atf_check -o inline:'{\n' head -n 1 ada.out
	atf_check -o inline:'}\n' tail -n 1 ada.out
	# stat's size is what cat gives
	[ "$(stat -c %s "$MNT/users/ada.json")" = "$(wc -c <ada.out | tr -d ' ')" ] ||
	    fail "stat size $(stat -c %s "$MNT/users/ada.json") != $(wc -c <ada.out) bytes read"
	atf_check -o match:'"Bob"' cat "$MNT/users/bob.json"
	jqtrue "$MNT/.status" 'type == "object"'
	unmount "$MNT" "$DAEMON_PID"
}
both ls_and_cat_show_records_written_by_the_cli

# ---- editing ----------------------------------------------------------------------

do_cp_creates_a_record()
{
	seed_users
	mount_at "$MNT"
	printf '{"name":"Carol","email":"carol@example.com","age":29}\n' >carol.json
	atf_check cp carol.json "$MNT/users/carol.json"
	record_is carol '.name == "Carol" and .age == 29'
	atf_check -o inline:'ada.json\nbob.json\ncarol.json\n' ls "$MNT/users"
	jqtrue "$MNT/users/carol.json" '.id == "carol" and .name == "Carol"'
	unmount "$MNT" "$DAEMON_PID"
	record_is carol '.email == "carol@example.com"'
}
both cp_creates_a_record

do_sed_in_place_edit_is_stored()
{
	seed_users
	mount_at "$MNT"
	atf_check sed -i 's/"Ada"/"Ada L."/' "$MNT/users/ada.json"
	record_is ada '.name == "Ada L." and .age == 36'
	# sed's temporary file does not stay behind
	atf_check -o inline:'ada.json\nbob.json\n' ls "$MNT/users"
	unmount "$MNT" "$DAEMON_PID"
}
both sed_in_place_edit_is_stored

do_jq_rewrite_and_mv_is_stored()
{
	seed_users
	mount_at "$MNT"
	atf_check -x "cd '$MNT/users' && jq '.age = 37' ada.json > t && mv t ada.json"
	record_is ada '.age == 37 and .name == "Ada"'
	atf_check -o inline:'ada.json\nbob.json\n' ls "$MNT/users"
	unmount "$MNT" "$DAEMON_PID"
}
both jq_rewrite_and_mv_is_stored

do_vim_scripted_edit_is_stored()
{
	vim=$(command -v vim || command -v vim.tiny) ||
	    fail "vim is needed (apt-get install vim-tiny; scripts/install-deps.sh does)"
	seed_users
	mount_at "$MNT"
	# -N: vim's defaults (writebackup, backupcopy=auto: the rename dance)
	atf_check -o ignore -e ignore "$vim" -N -u NONE -i NONE -es \
	    -c '%s/"Bob"/"Robert"/' -c 'wq' "$MNT/users/bob.json"
	record_is bob '.name == "Robert" and .age == 41'
	# no swap, backup or probe file ("4913") left
	atf_check -o inline:'ada.json\nbob.json\n' ls -A "$MNT/users" --ignore=.schema.json \
	    --ignore=.partitions
	unmount "$MNT" "$DAEMON_PID"
}
both vim_scripted_edit_is_stored

# nano saves by open(O_WRONLY|O_CREAT|O_TRUNC), write, close: the close
# must succeed only once the record is stored.
do_nano_save_pattern_is_stored()
{
	seed_users
	mount_at "$MNT"
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
	unmount "$MNT" "$DAEMON_PID"
}
both nano_save_pattern_is_stored

do_rm_deletes_the_record()
{
	seed_users
	mount_at "$MNT"
	atf_check rm "$MNT/users/bob.json"
	record_absent bob
	record_is ada '.name == "Ada"'
	atf_check -o inline:'ada.json\n' ls "$MNT/users"
	atf_check -s not-exit:0 -e match:'No such file' cat "$MNT/users/bob.json"
	unmount "$MNT" "$DAEMON_PID"
}
both rm_deletes_the_record

do_mv_renames_the_record()
{
	seed_users
	mount_at "$MNT"
	atf_check mv "$MNT/users/bob.json" "$MNT/users/robert.json"
	record_is robert '.id == "robert" and .name == "Bob" and .age == 41'
	record_absent bob
	atf_check -o inline:'ada.json\nrobert.json\n' ls "$MNT/users"
	unmount "$MNT" "$DAEMON_PID"
}
both mv_renames_the_record

do_grep_and_find_walk_the_tree()
{
	seed_users
	mount_at "$MNT"
	atf_check -o inline:"$MNT/users/ada.json\n" grep -rl '"Ada"' "$MNT"
	atf_check -o match:'"Bob"' grep -r '"Bob"' "$MNT/users"
	atf_check -o inline:"$MNT/users/ada.json\n$MNT/users/bob.json\n" \
	    -x "find '$MNT/users' -maxdepth 1 -name '*.json' ! -name '.*' | sort"
	atf_check -o match:"^$MNT/users\$" find "$MNT" -type d -name users
	unmount "$MNT" "$DAEMON_PID"
}
both grep_and_find_walk_the_tree

# ---- refused writes -----------------------------------------------------------------

do_invalid_json_is_refused_with_einval()
{
	seed_users
	cli get users ada >ada-before.json
	mount_at "$MNT"
	printf '{"name": "Ada", ' >bad.json
	atf_check -s not-exit:0 -e match:'Invalid argument' cp bad.json "$MNT/users/ada.json"
	# the reason is in /.errors
	jq -e -s 'map(select(.path == "/users/ada.json" and .errno == 22)) | length >= 1' \
	    "$MNT/.errors" >/dev/null || fail "no EINVAL line for /users/ada.json in /.errors: $(cat "$MNT/.errors")"
	# and S3 still holds the record as it was
	cli get users ada >ada-after.json
	atf_check -o empty diff ada-before.json ada-after.json
	# a schema violation (name is required) is refused the same way
	printf '{"age": 3}\n' >noname.json
	atf_check -s not-exit:0 -e match:'Invalid argument' cp noname.json "$MNT/users/eve.json"
	record_absent eve
	# the refused content stays in the files until fixed: leaving it at
	# unmount is reported (status 1), and S3 still holds the old record
	unmount "$MNT" "$DAEMON_PID" 1
	grep -q 'a pending write could not be stored' "$MNT.log" ||
	    fail "no report of the refused write at unmount: $(tail -n 5 "$MNT.log")"
	cli get users ada >ada-end.json
	atf_check -o empty diff ada-before.json ada-end.json
	record_absent eve
}
both invalid_json_is_refused_with_einval

do_ro_mount_refuses_writes()
{
	seed_users
	mount_at "$MNT" -o ro
	atf_check -o match:'"Ada"' cat "$MNT/users/ada.json"
	printf '{"name":"Zed"}\n' >zed.json
	atf_check -s not-exit:0 -e match:'Read-only file system' cp zed.json "$MNT/users/zed.json"
	atf_check -s not-exit:0 -e match:'Read-only file system' rm "$MNT/users/ada.json"
	record_absent zed
	record_is ada '.name == "Ada"'
	unmount "$MNT" "$DAEMON_PID"
}
one ro_mount_refuses_writes local

do_chmod_chown_and_links_are_refused()
{
	seed_users
	mount_at "$MNT"
	f=$MNT/users/ada.json
	atf_check -s not-exit:0 -e match:'Operation not permitted' chmod 0600 "$f"
	atf_check -s not-exit:0 -e match:'Operation not permitted' chown 1234 "$f"
	atf_check -s not-exit:0 -e match:'Operation not permitted' ln "$f" "$MNT/users/hard.json"
	atf_check -s not-exit:0 -e match:'Operation not permitted' ln -s ada.json "$MNT/users/soft.json"
	atf_check -s not-exit:0 -e match:'Operation not permitted' mkfifo "$MNT/users/fifo"
	# touch (utimensat) succeeds and changes nothing
	cli get users ada >before.json
	atf_check touch "$f"
	cli get users ada >after.json
	atf_check -o empty diff before.json after.json
	unmount "$MNT" "$DAEMON_PID"
}
one chmod_chown_and_links_are_refused local

do_uid_gid_umask_set_owners_and_modes()
{
	seed_users
	mount_at "$MNT" -o uid=1234,gid=4321,umask=027
	atf_check -o inline:'1234 4321 640\n' stat -c '%u %g %a' "$MNT/users/ada.json"
	atf_check -o inline:'1234 4321 750\n' stat -c '%u %g %a' "$MNT/users"
	unmount "$MNT" "$DAEMON_PID"
}
one uid_gid_umask_set_owners_and_modes local

do_passphrase_file_decrypts_secret_fields()
{
	printf '{"attributes": {"name": "string", "password": "secret|optional"}, "timestamps": false}' >def.json
	S3DB_PASSPHRASE=hunter2 "$S3DB_CLI" "$CLI_C" schema users <def.json >/dev/null ||
	    fail "cannot define the resource"
	printf '{"id": "a", "name": "A", "password": "pw123"}' |
	    S3DB_PASSPHRASE=hunter2 "$S3DB_CLI" "$CLI_C" put users >/dev/null || fail "cannot put"
	(umask 077 && printf 'hunter2\n' >pass)
	mount_at "$MNT" -o passphrase_file="$WORK/pass"
	jqtrue "$MNT/users/a.json" '.password == "pw123"'
	unmount "$MNT" "$DAEMON_PID"
	# an unreadable passphrase file stops the mount, with the reason
	atf_check -s exit:2 -e match:'passphrase_file .*nope: No such file' \
	    "$S3DBFS" "$DAEMON_C" "$MNT" -f -o passphrase_file="$WORK/nope"
}
one passphrase_file_decrypts_secret_fields local

# ---- what must never be lost -----------------------------------------------------------

do_sigterm_stores_a_pending_write_and_unmounts()
{
	seed_users
	mount_at "$MNT"
	exec 3>"$MNT/users/pend.json"
	printf '{"name":"Pending","age":1}' >&3
	kill -TERM "$DAEMON_PID"
	wait "$DAEMON_PID"
	status=$?
	exec 3>&-
	[ $status -eq 0 ] || fail "s3dbfs exited $status after SIGTERM: $(tail -n 20 "$MNT.log")"
	is_mounted "$MNT" && fail "$MNT is still mounted after SIGTERM"
	record_is pend '.name == "Pending" and .age == 1'
	grep -q 'unmounted' "$MNT.log" || fail "no 'unmounted' line: $(tail -n 20 "$MNT.log")"
}
both sigterm_stores_a_pending_write_and_unmounts

do_kill_9_keeps_every_closed_file()
{
	seed_users
	mount_at "$MNT"
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
	i=0
	while [ "$(wc -l <closed.txt)" -lt 5 ]; do
		i=$((i + 1))
		[ $i -le 300 ] || fail "the writer closed fewer than 5 files in 30 s: $(cat writer.err)"
		sleep 0.1
	done
	kill -KILL "$DAEMON_PID"
	wait "$writer"
	# the dead mount stays; mounting over it is refused with what to do
	# (daemon mode: were it wrongly accepted, the command still returns)
	atf_check -s exit:1 -e match:'already mounted.*fusermount3 -u' \
	    "$S3DBFS" "$DAEMON_C" "$MNT" ${DAEMON_OPTS:+-o "$DAEMON_OPTS"}
	fusermount3 -uz "$MNT"
	n=$(wc -l <closed.txt)
	[ "$n" -ge 5 ] || fail "only $n files closed"
	for id in $(cat closed.txt); do
		record_is "$id" ".name == \"$id\""
	done
}
both kill_9_keeps_every_closed_file

# ---- caches -------------------------------------------------------------------------------

do_second_mount_sees_a_change_within_its_ttl()
{
	seed_users
	ttl="record_ttl=1,dir_ttl=1,attr_timeout=1,entry_timeout=1,negative_timeout=1"
	mount_at "$MNT" -o "$ttl"
	pid_a=$DAEMON_PID
	mount_at "$WORK/mnt2" -o "$ttl"
	pid_b=$DAEMON_PID
	jqtrue "$WORK/mnt2/users/ada.json" '.age == 36'
	atf_check -o inline:'ada.json\nbob.json\n' ls "$WORK/mnt2/users"
	# change a record and add one through the first mount
	jq '.age = 50' "$MNT/users/ada.json" >ada50.json
	atf_check cp ada50.json "$MNT/users/ada.json"
	printf '{"name":"Fay"}\n' >fay.json
	atf_check cp fay.json "$MNT/users/fay.json"
	start=$(date +%s)
	i=0
	until jq -e '.age == 50' "$WORK/mnt2/users/ada.json" >/dev/null 2>&1 &&
	    [ -f "$WORK/mnt2/users/fay.json" ]; do
		i=$((i + 1))
		[ $i -le 50 ] || fail "the second mount still shows the old data after 5 s (TTLs 1 s)"
		sleep 0.1
	done
	echo "seen after $(( $(date +%s) - start )) s"
	unmount "$WORK/mnt2" "$pid_b"
	unmount "$MNT" "$pid_a"
}
both second_mount_sees_a_change_within_its_ttl

# front_log: the strict front's request log entries for our prefix.
front_log()
{
	curl -sf "$S3DB_TEST_S3_URL/__control/log" >front.json || fail "cannot read the front's log"
	jq --arg p "$PREFIX/" '[.[] | select((.key // "") | startswith($p))]' front.json
}

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
	mount_at "$MNT" -o "$cache"
	atf_check -o ignore ls -l "$MNT/users"
	atf_check -o ignore -x "cat '$MNT'/users/*.json"
	unmount "$MNT" "$DAEMON_PID"
	curl -sf -X DELETE "$S3DB_TEST_S3_URL/__control/log" >/dev/null || fail "cannot clear the front's log"
	mount_at "$MNT" -o "$cache"
	atf_check -o ignore ls -l "$MNT/users"
	atf_check -o match:'"c5"' -x "cat '$MNT'/users/*.json"
	unmount "$MNT" "$DAEMON_PID"
	front_log >mine.json
	# the catalog (s3db.json) is read at open; every record comes from
	# the cache, confirmed by the listing
	jq -e '[.[] | select(.command != "ListObjectsV2" and (.key | endswith("/s3db.json") | not))]
	    | length == 0' mine.json >/dev/null ||
	    fail "requests other than LIST after the remount: $(jq -c '[.[] | {command, key}]' mine.json)"
	jq -e '[.[] | select(.command == "ListObjectsV2")] | length >= 1' mine.json >/dev/null ||
	    fail "no LIST at all: $(jq -c . mine.json)"
}
one remount_with_cache_dir_costs_only_list_requests s3

# ---- the configuration file ----------------------------------------------------------------

# write_config FILE JSON: writes FILE (mode 0600) by rename, as editors do.
write_config()
{
	(umask 077 && printf '%s\n' "$2" >"$1.tmp") && mv "$1.tmp" "$1"
}

do_config_change_is_applied_live_and_an_invalid_one_rejected()
{
	seed_users
	write_config config.json "{\"connectionString\": \"$CLI_C\", \"mount\": {\"record_ttl\": 5, \"log_level\": \"info\"}}"
	"$S3DBFS" -o config=config.json "$MNT" -f >>"$MNT.log" 2>&1 &
	DAEMON_PID=$!
	echo "$DAEMON_PID" >>daemon.pids
	wait_mounted "$MNT" "$DAEMON_PID"
	jqtrue "$MNT/.status" '.cache.ttlSeconds.record == 5'

	# a live option: applied, and the log says what changed
	write_config config.json "{\"connectionString\": \"$CLI_C\", \"mount\": {\"record_ttl\": 2, \"log_level\": \"info\"}}"
	wait_for_log "$MNT.log" 'info: config: record_ttl 5 -> 2$'
	jqtrue "$MNT/.status" '.cache.ttlSeconds.record == 2'

	# an invalid file: rejected with the file and the key, nothing changes
	write_config config.json "{\"connectionString\": \"$CLI_C\", \"mount\": {\"record_ttl\": \"fast\"}}"
	wait_for_log "$MNT.log" 'config\.json: mount\.record_ttl: must be a number.*rejected'
	jqtrue "$MNT/.status" '.cache.ttlSeconds.record == 2'
	atf_check -o match:'"Ada"' cat "$MNT/users/ada.json"
	printf '{ not json' >config.json
	wait_for_log "$MNT.log" 'config\.json: .*invalid JSON.*rejected'

	# written in place (no rename) works too; FUSE timeouts are live
	(umask 077 && printf '%s\n' "{\"connectionString\": \"$CLI_C\", \"mount\": {\"record_ttl\": 2, \"attr_timeout\": 3}}" >config.json)
	wait_for_log "$MNT.log" 'info: config: attr_timeout 1 -> 3$'
	# the vfs's options are live too: the new umask shows once the
	# kernel's attributes expire
	write_config config.json "{\"connectionString\": \"$CLI_C\", \"mount\": {\"record_ttl\": 2, \"attr_timeout\": 3, \"umask\": \"077\"}}"
	wait_for_log "$MNT.log" 'info: config: umask 022 -> 077$'
	i=0
	until [ "$(stat -c %a "$MNT/users/ada.json")" = 600 ]; do
		i=$((i + 1))
		[ $i -le 80 ] || fail "ada.json is still mode $(stat -c %a "$MNT/users/ada.json") 8 s after umask 077"
		sleep 0.1
	done
	# an option that needs a remount is reported as such
	write_config config.json "{\"connectionString\": \"$CLI_C\", \"mount\": {\"record_ttl\": 2, \"attr_timeout\": 3, \"umask\": \"077\", \"max_threads\": 40}}"
	wait_for_log "$MNT.log" 'config: max_threads 64 -> 40: takes effect at the next mount'
	unmount "$MNT" "$DAEMON_PID"
}
one config_change_is_applied_live_and_an_invalid_one_rejected local

do_config_errors_name_the_file_and_the_key()
{
	seed_users
	write_config bad1.json "{\"connectionString\": \"$CLI_C\", \"plugins\": [\"CostsPlugin\", {\"name\": \"CachePlugin\", \"options\": {\"ttl\": \"long\"}}]}"
	atf_check -s exit:2 -e match:'bad1\.json: plugins\[1\]\.options\.ttl: must be a number' \
	    "$S3DBFS" -o config=bad1.json "$MNT" -f
	write_config bad2.json '{"plugins": ["CachePlugn"]}'
	atf_check -s exit:2 -e match:"bad2\\.json: plugins\\[0\\]: unknown plugin 'CachePlugn'" \
	    "$S3DBFS" -o config=bad2.json "$MNT" -f
	write_config bad3.json '{"connectionstring": "file:///x"}'
	atf_check -s exit:2 -e match:'bad3\.json: connectionstring: unknown key' \
	    "$S3DBFS" -o config=bad3.json "$MNT" -f
	write_config bad4.json '{"mount": {"umask": 18}}'
	atf_check -s exit:2 -e match:'bad4\.json: mount\.umask: must be an octal string' \
	    "$S3DBFS" -o config=bad4.json "$MNT" -f
	write_config bad5.json '{"plugins": [{"name": "MetricsPlugin", "options": {"sampleRate": 2}}]}'
	atf_check -s exit:2 -e match:'bad5\.json: plugins\[0\]\.options\.sampleRate: must be a number from 0 to 1' \
	    "$S3DBFS" -o config=bad5.json "$MNT" -f
	# a secret in a file others can read is refused, and not echoed
	write_config open.json '{"connectionString": "s3://AKIDX:Zs3cr3tZ@bucket/p"}'
	chmod 0644 open.json
	atf_check -s exit:2 -e save:open.err "$S3DBFS" -o config=open.json "$MNT" -f
	grep -q 'open\.json: holds a secret' open.err || fail "no 'holds a secret': $(cat open.err)"
	grep -q Zs3cr3tZ open.err && fail "the secret is in the message"
	is_mounted "$MNT" && fail "a refused configuration was mounted"

	# a valid one: plugins are kept and logged, unknown plugin options
	# warned about, and -o wins over the file
	write_config good.json "{\"connectionString\": \"$CLI_C\", \"plugins\": [\"CostsPlugin\", {\"name\": \"CachePlugin\", \"options\": {\"ttl\": 1000, \"bogus\": 1}}], \"mount\": {\"record_ttl\": 5}}"
	"$S3DBFS" -o config=good.json "$MNT" -f -o record_ttl=3 >>"$MNT.log" 2>&1 &
	DAEMON_PID=$!
	echo "$DAEMON_PID" >>daemon.pids
	wait_mounted "$MNT" "$DAEMON_PID"
	jqtrue "$MNT/.status" '.cache.ttlSeconds.record == 3'
	grep -q 'plugin CachePlugin' "$MNT.log" || fail "plugins not logged: $(cat "$MNT.log")"
	grep -q 'plugins\[1\]\.options\.bogus: not an option of CachePlugin' "$MNT.log" ||
	    fail "no warning about the unknown option: $(cat "$MNT.log")"
	unmount "$MNT" "$DAEMON_PID"
}
one config_errors_name_the_file_and_the_key local

# ---- credentials and secrets -------------------------------------------------------------

do_passwd_file_must_be_private()
{
	printf 'AKIDX:Zs3cr3tZ\n' >passwd-open
	chmod 0644 passwd-open
	atf_check -s exit:2 -e save:err "$S3DBFS" "$DAEMON_C" "$MNT" -f -o passwd_file=passwd-open
	grep -q 'passwd_file .*passwd-open: mode 0644' err || fail "wrong message: $(cat err)"
	grep -q Zs3cr3tZ err && fail "the secret is in the message"
	is_mounted "$MNT" && fail "mounted with an open passwd_file"
	return 0
}
one passwd_file_must_be_private s3

do_secret_never_reaches_ps_or_the_log()
{
	seed_users
	# the secret on the command line, on purpose
	"$S3DBFS" "$CLI_C" "$MNT" -f -o log_level=debug >>"$MNT.log" 2>&1 &
	DAEMON_PID=$!
	echo "$DAEMON_PID" >>daemon.pids
	wait_mounted "$MNT" "$DAEMON_PID"
	atf_check -o match:'"Ada"' cat "$MNT/users/ada.json"
	enc=$(jq -rn --arg s "$S3DB_TEST_SECRET_KEY" '$s | @uri')
	tr '\0' ' ' <"/proc/$DAEMON_PID/cmdline" >cmdline
	grep -qF "$S3DB_TEST_ACCESS_KEY" cmdline || fail "cmdline lost the access key: $(cat cmdline)"
	for s in "$enc" "$S3DB_TEST_SECRET_KEY"; do
		grep -qF -- "$s" cmdline && fail "the secret is in ps: $(cat cmdline)"
		grep -qF -- "$s" /proc/mounts && fail "the secret is in /proc/mounts"
		grep -qF -- "$s" "$MNT.log" && fail "the secret is in the log"
		grep -qF -- "$s" "$MNT/.status" && fail "the secret is in /.status"
	done
	awk -v m="$MNT" '$2 == m' /proc/mounts | grep -qF '***' ||
	    fail "/proc/mounts does not show the masked source"
	unmount "$MNT" "$DAEMON_PID"
}
one secret_never_reaches_ps_or_the_log s3

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
	is_mounted "$MNT" || fail "s3dbfs returned 0 but $MNT is not mounted"
	pid=$(daemon_pid "$MNT") || fail "no daemon process for $MNT"
	echo "$pid" >>daemon.pids
	atf_check -o match:'"Ada"' cat "$MNT/users/ada.json"
	unmount "$MNT" "$pid"

	# start-up errors reach the terminal, with their exit status
	atf_check -s exit:1 -e match:'mount point .*nowhere: No such file' \
	    "$S3DBFS" "$DAEMON_C" "$WORK/nowhere"
	atf_check -s exit:2 -e match:'-o record_ttl: must be a number' \
	    "$S3DBFS" "$DAEMON_C" "$MNT" -o record_ttl=soon
	atf_check -s exit:2 -e match:'unknown option' "$S3DBFS" "$DAEMON_C" "$MNT" -o frobnicate
	atf_check -s exit:2 -e match:'no MOUNTPOINT' "$S3DBFS" -o log_level=info
	atf_check -s exit:4 -e match:'cannot open the database' \
	    "$S3DBFS" "http://AK:SK@127.0.0.1:1/bucket/p" "$MNT" -o retries=0,timeout=2
	is_mounted "$MNT" && fail "mounted after a failed start"
	return 0
}
one daemon_mode_returns_once_mounted local

do_mount_helper_takes_mount_8_arguments()
{
	[ -x "${S3DBFS_MOUNT_HELPER}" ] ||
	    fail "S3DBFS_MOUNT_HELPER='${S3DBFS_MOUNT_HELPER}' is not an executable"
	seed_users
	# fake (-f) only prints what would run: fstab-only options are gone
	atf_check -s exit:0 -e save:fake.err "$S3DBFS_MOUNT_HELPER" "$DAEMON_C" "$MNT" -f \
	    -o rw,_netdev,noauto,nofail,x-systemd.automount,record_ttl=2
	grep -q -- "-o rw,record_ttl=2\$" fake.err || fail "wrong translation: $(cat fake.err)"
	is_mounted "$MNT" && fail "-f (fake) mounted"
	# a real mount, as mount(8) would call the helper
	atf_check -s exit:0 "$S3DBFS_MOUNT_HELPER" "$DAEMON_C" "$MNT" -n -o _netdev,nofail,record_ttl=2
	is_mounted "$MNT" || fail "the helper did not mount"
	pid=$(daemon_pid "$MNT") || fail "no daemon for $MNT"
	echo "$pid" >>daemon.pids
	jqtrue "$MNT/.status" '.cache.ttlSeconds.record == 2'
	unmount "$MNT" "$pid"
	# a config file as the source
	write_config db.json "{\"connectionString\": \"$CLI_C\"}"
	atf_check -s exit:0 "$S3DBFS_MOUNT_HELPER" "$WORK/db.json" "$MNT" -o noauto
	is_mounted "$MNT" || fail "the helper did not mount the config file"
	pid=$(daemon_pid "$MNT") || fail "no daemon for $MNT"
	echo "$pid" >>daemon.pids
	atf_check -o match:'"Bob"' cat "$MNT/users/bob.json"
	unmount "$MNT" "$pid"
}
one mount_helper_takes_mount_8_arguments local

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
	cli schema users <users-def.json >/dev/null 2>seed.err || fail "schema: $(cat seed.err)"
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
	mount_at "$MNT"
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
		[ ! -s "bad.$r" ] || fail "reader $r: $(head -n 5 "bad.$r")"
		[ -s "rounds.$r" ] || fail "reader $r read nothing"
	done
	for w in 1 2 3 4; do
		for r in a b; do
			[ -f "last.w$w$r" ] || fail "writer $w never stored w$w$r"
			record_is "w$w$r" ".age == $(cat "last.w$w$r") and .email == \"w$w$r@example.com\""
		done
	done
	atf_check -o inline:'ada.json\nbob.json\nw1a.json\nw1b.json\nw2a.json\nw2b.json\nw3a.json\nw3b.json\nw4a.json\nw4b.json\n' \
	    ls "$MNT/users"
	ls -A "$MNT/users" | grep -q 'fuse_hidden\|\.tmp' && fail "left behind: $(ls -A "$MNT/users")"
	unmount "$MNT" "$DAEMON_PID"
}
both concurrent_readers_and_writers_keep_every_record_whole

# rm of an open file: fstat, read and write on the descriptor still work
# (link count 0), and the record stays deleted after the close.
do_an_unlinked_open_file_stays_usable_until_closed()
{
	seed_users
	mount_at "$MNT"
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
	ls -A "$MNT/users" | grep -q fuse_hidden && fail "a hidden file is listed: $(ls -A "$MNT/users")"
	unmount "$MNT" "$DAEMON_PID"
	record_absent bob
	record_is ada '.name == "Ada"'
}
both an_unlinked_open_file_stays_usable_until_closed

# creating and removing files moves the directory's mtime and ctime
# (pjdfstest open/00.t).
do_directory_times_follow_changes()
{
	seed_users
	mount_at "$MNT"
	m0=$(stat -c %Y "$MNT/users")
	c0=$(stat -c %Z "$MNT/users")
	sleep 1.1
	printf '{"name":"Cy"}' >"$MNT/users/cy.json"
	m1=$(stat -c %Y "$MNT/users")
	c1=$(stat -c %Z "$MNT/users")
	[ "$m1" -gt "$m0" ] || fail "mtime $m0 -> $m1 after a create"
	[ "$c1" -gt "$c0" ] || fail "ctime $c0 -> $c1 after a create"
	sleep 1.1
	rm "$MNT/users/cy.json"
	m2=$(stat -c %Y "$MNT/users")
	[ "$m2" -gt "$m1" ] || fail "mtime $m1 -> $m2 after a remove"
	unmount "$MNT" "$DAEMON_PID"
}
both directory_times_follow_changes

# the partition tree holds symbolic links: grep -r and find see each
# record once; cat, jq and readlink through the links work.
do_partition_entries_are_links_to_the_records()
{
	seed_regions
	mount_at "$MNT"
	atf_check -o inline:"$MNT/users/ada.json\n" grep -rl '"Ada"' "$MNT"
	atf_check -o inline:'1\n' -x "grep -r '\"Bob\"' '$MNT' | wc -l"
	atf_check -o inline:'2\n' -x "find '$MNT' -type f -name '*.json' ! -name '.*' | wc -l"
	link=$MNT/users/.partitions/byRegion/region=eu/ada.json
	atf_check -o inline:'../../../ada.json\n' readlink "$link"
	[ -L "$link" ] || fail "$link is not a symbolic link"
	atf_check -o inline:"$MNT/users/ada.json\n" readlink -f "$link"
	cat "$link" >via-link.json || fail "cat $link"
	atf_check -o empty cmp via-link.json "$MNT/users/ada.json"
	jqtrue "$link" '.name == "Ada"'
	nested=$MNT/users/.partitions/byRegionAge/age=41/region=us/bob.json
	atf_check -o inline:'../../../../bob.json\n' readlink "$nested"
	jqtrue "$nested" '.name == "Bob"'
	# the tree stays read-only
	atf_check -s not-exit:0 -e match:'Read-only' rm "$link"
	atf_check -s not-exit:0 -e ignore touch "$MNT/users/.partitions/byRegion/region=eu/new.json"
	record_is ada '.name == "Ada"'
	unmount "$MNT" "$DAEMON_PID"
}
both partition_entries_are_links_to_the_records

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
	[ $n -ge 2 ] || fail "expected at least 2 contrib/examples/s3dbfs-*.json, found $n"
	# plugins.json names the webhook .so where make install puts it: the
	# parser only needs a regular file there (t_valgrind mounts with the
	# example and the built .so); no option may draw a warning
	f="$S3DBFS_CONTRIB/examples/plugins.json"
	[ -f "$f" ] || fail "$f is missing"
	: >"$WORK/webhook.so"
	jq --arg so "$WORK/webhook.so" \
	    '.plugins |= map(if type == "object" and has("path") then .path = $so else . end)' \
	    "$f" >plugins.json || fail "$f is not JSON"
	jq -e '[.plugins[] | .name // .path] | length == 4' plugins.json >/dev/null ||
	    fail "$f: expected three built-in plugins and a .so: $(jq -c .plugins plugins.json)"
	atf_check -s exit:1 -e match:'mount point .*nowhere: No such file' -e not-match:'warn|error' \
	    "$S3DBFS" -o config="$WORK/plugins.json" "$WORK/nowhere" -f
}
CASES="$CASES example_configs_are_valid"

atf_init_test_cases()
{
	for c in $CASES; do
		atf_add_test_case "$c"
	done
}
