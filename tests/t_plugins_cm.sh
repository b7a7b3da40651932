#! /usr/bin/env atf-sh
#
# t_plugins_cm.sh — CostsPlugin and MetricsPlugin in the mounted daemon:
# a config file enabling both, a cp / cat / rm / ls workload through the
# mount, then /.costs against the strict front's own request log (S3) or
# its internal consistency (local backend), `echo reset > /.costs`, /.metrics
# (jq) and /.metrics.prom (a strict exposition-format check in perl), and
# the plugins' thread stopping at unmount (the daemon exits 0 and the
# MetricsPlugin's last flush has reached storage).
#
# Programs: $S3DBFS and $S3DB_CLI, exported by the generated
# tests/t_plugins_cm (or ATF configuration variables).  Mounting needs
# root; every case unmounts in its cleanup.

fail()
{
	atf_fail "$(printf '%s' "$*" | tr -s '\n' '|' | sed 's/|/ | /g')"
}

common_head()
{
	atf_set require.user root
	atf_set require.progs "fusermount3 jq perl curl"
	atf_set timeout 240
}

setup()
{
	[ -n "${S3DBFS:-}" ] || S3DBFS=$(atf_config_get S3DBFS "")
	[ -n "${S3DB_CLI:-}" ] || S3DB_CLI=$(atf_config_get S3DB_CLI "")
	[ -x "${S3DBFS}" ] || fail "S3DBFS='${S3DBFS}' is not an executable (the built s3dbfs)"
	[ -x "${S3DB_CLI}" ] || fail "S3DB_CLI='${S3DB_CLI}' is not an executable (the built s3db)"
	unset S3DB_PASSPHRASE S3DB_LOG_LEVEL AWS_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY \
	    AWS_SESSION_TOKEN AWS_REGION AWS_ENDPOINT_URL
	WORK=$(pwd)
	MNT=$WORK/mnt
	mkdir -p "$MNT"
}

use_local()
{
	CONN="file://$WORK/db"
	BACKEND=local
}

use_s3()
{
	for v in S3DB_TEST_S3_URL S3DB_TEST_S3_BUCKET S3DB_TEST_ACCESS_KEY S3DB_TEST_SECRET_KEY; do
		eval "[ -n \"\${$v:-}\" ]" ||
		    fail "$v is not set: start tests/servers/servers.sh and export its env"
	done
	PREFIX="t/plugins-cm-$(atf_get ident)-$$-$(date +%s%N)"
	hostport=${S3DB_TEST_S3_URL#http://}
	enc=$(jq -rn --arg s "$S3DB_TEST_SECRET_KEY" '$s | @uri')
	CONN="http://$S3DB_TEST_ACCESS_KEY:$enc@$hostport/$S3DB_TEST_S3_BUCKET/$PREFIX"
	BACKEND=s3
}

cli()
{
	"$S3DB_CLI" "$CONN" "$@"
}

jqtrue()
{
	jq -e "$2" "$1" >/dev/null 2>&1 || fail "$1: jq '$2' is not true: $(head -c 800 "$1")"
}

seed_users()
{
	printf '%s' '{"attributes":{"name":"string|required","age":"number|optional"},"timestamps":false}' |
	    cli schema users >/dev/null 2>seed.err || fail "schema: $(cat seed.err)"
	for u in ada bob; do
		printf '{"name":"%s","age":40}' "$u" | cli put users "$u" >/dev/null 2>seed.err ||
		    fail "put $u: $(cat seed.err)"
	done
}

is_mounted()
{
	awk -v m="$1" '$2 == m && $3 == "fuse.s3dbfs" { f = 1 } END { exit !f }' /proc/mounts
}

# mount_with_config: the daemon on $MNT with ./config.json, in the
# foreground (log in $MNT.log, pid in $DAEMON_PID and ./daemon.pids).
mount_with_config()
{
	"$S3DBFS" -o config=config.json "$MNT" -f >>"$MNT.log" 2>&1 &
	DAEMON_PID=$!
	echo "$DAEMON_PID" >>daemon.pids
	i=0
	while ! is_mounted "$MNT"; do
		kill -0 "$DAEMON_PID" 2>/dev/null ||
		    fail "s3dbfs exited before mounting: $(tail -n 20 "$MNT.log")"
		i=$((i + 1))
		[ $i -le 100 ] || fail "not mounted after 10 s: $(tail -n 20 "$MNT.log")"
		sleep 0.1
	done
}

# unmount_and_wait: fusermount3 -u, then the daemon must exit 0 in 15 s.
unmount_and_wait()
{
	i=0
	while is_mounted "$MNT"; do
		fusermount3 -u "$MNT" 2>unmount.err && break
		i=$((i + 1))
		[ $i -le 50 ] || fail "cannot unmount: $(cat unmount.err)"
		sleep 0.1
	done
	i=0
	while kill -0 "$DAEMON_PID" 2>/dev/null; do
		i=$((i + 1))
		[ $i -le 150 ] || fail "s3dbfs still runs 15 s after unmount (a plugin thread?)"
		sleep 0.1
	done
	wait "$DAEMON_PID"
	st=$?
	[ $st -eq 0 ] || fail "s3dbfs exited $st at unmount: $(tail -n 20 "$MNT.log")"
}

cleanup_mounts()
{
	for round in 1 2 3; do
		for m in $(awk -v p="$(pwd)/" 'index($2, p) == 1 { print $2 }' /proc/mounts); do
			fusermount3 -uz "$m" 2>/dev/null
		done
	done
	if [ -f daemon.pids ]; then
		for p in $(cat daemon.pids); do kill -TERM "$p" 2>/dev/null; done
		sleep 0.5
		for p in $(cat daemon.pids); do kill -KILL "$p" 2>/dev/null; done
	fi
	return 0
}

# prom_check FILE: strict Prometheus text format 0.0.4 — names, labels,
# escapes, HELP/TYPE before samples, one block per family, no timestamps,
# histogram buckets increasing to le="+Inf" equal to _count.
prom_check()
{
	perl -e '
	my ($fam, $type, %closed, %hist, $err) = ("", "");
	sub close_fam { for (keys %hist) { $err ||= "$fam\{$_}: no +Inf bucket" unless $hist{$_}{inf} }
		%hist = (); $closed{$fam} = 1 if $fam; $fam = ""; $type = ""; }
	my $lab = qr/[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"/;
	my $num = qr/(?:[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+)|[-+]Inf|NaN)/;
	while (my $l = <STDIN>) {
		die "line without newline\n" unless $l =~ s/\n$//;
		next if $l eq "";
		if ($l =~ /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/) {
			my ($kw, $f, $rest) = ($1, $2, $3);
			if ($f ne $fam) { close_fam(); die "family $f twice\n" if $closed{$f}; $fam = $f; }
			if ($kw eq "TYPE") { die "TYPE twice for $fam\n" if $type;
				die "bad type $rest\n" unless $rest =~ /^(counter|gauge|histogram|summary|untyped)$/;
				$type = $rest; }
			next;
		}
		next if $l =~ /^#/;
		$l =~ /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:$lab(?:,$lab)*)?\})? ($num)$/
		    or die "bad sample line: $l\n";
		my ($name, $labels, $v) = ($1, $2 // "", $3);
		die "sample before TYPE: $l\n" unless $type;
		my $sfx = "";
		if ($type eq "histogram") { ($sfx) = $name =~ /^\Q$fam\E(_bucket|_sum|_count)$/
			or die "$name outside histogram $fam\n"; }
		else { die "$name outside family $fam\n" unless $name eq $fam; }
		next unless $type eq "histogram";
		my $le; ($labels =~ s/,?le="([^"]*)"//) and $le = $1;
		$labels =~ s/^\{,?/{/;
		my $h = $hist{$labels} //= { le => -9e99, n => -1, inf => 0 };
		if ($sfx eq "_bucket") {
			die "bucket without le: $l\n" unless defined $le;
			my $lv = $le eq "+Inf" ? 9e99 : $le;
			die "buckets not increasing or not monotone: $l\n" if $h->{inf} || $lv <= $h->{le} || $v < $h->{n};
			@$h{qw(le n)} = ($lv, $v); $h->{inf} = 1 if $le eq "+Inf";
		} elsif ($sfx eq "_count") {
			die "_count differs from +Inf bucket: $l\n" unless $h->{inf} && $v == $h->{n};
		}
	}
	close_fam(); die "$err\n" if $err;' <"$1" 2>prom.err || fail "$1 is not valid exposition text: $(cat prom.err)"
}

# reset_costs: `echo reset > /.costs`, then waits (2 s at most) until
# /.costs shows zero requests.  The daemon hands the written content to
# the plugin when the file is released, which FUSE does after close()
# returned, so a read at once may still show the counts before the reset.
# Right after the mount the MetricsPlugin's thread is still applying its
# retention (a few LISTs): a reset that is then overtaken by them is made
# again, until the counters read zero twice 0.3 s apart (at most 5 tries).
reset_costs()
{
	zero='.requests.total == 0 and .events.total == 0 and .total == 0'
	try=0
	while :; do
		try=$((try + 1))
		echo reset >"$MNT/.costs" || fail "echo reset > .costs failed"
		i=0
		until jq -e "$zero" "$MNT/.costs" >/dev/null 2>&1; do
			i=$((i + 1))
			[ $i -le 20 ] || fail "/.costs not zero 2 s after reset: $(cat "$MNT/.costs")"
			sleep 0.1
		done
		sleep 0.3
		jq -e "$zero" "$MNT/.costs" >/dev/null 2>&1 && return 0
		[ $try -lt 5 ] || fail "/.costs does not stay zero after reset: $(cat "$MNT/.costs")"
	done
}

# ---- the case -----------------------------------------------------------------------

do_costs_and_metrics_through_the_mount()
{
	seed_users
	(umask 077 && cat >config.json <<EOF
{
  "connectionString": "$CONN",
  "plugins": [
    "CostsPlugin",
    {"name": "MetricsPlugin", "options": {"flushInterval": 3600000, "batchSize": 10}}
  ],
  "mount": {"log_level": "info"}
}
EOF
	)
	mount_with_config
	[ -f "$MNT/.costs" ] || fail "no /.costs in the mount: $(ls -a "$MNT")"
	reset_costs
	if [ $BACKEND = s3 ]; then
		curl -fsS -X DELETE "$S3DB_TEST_S3_URL/__control/log" >/dev/null || fail "cannot clear the front log"
	fi

	# the workload
	printf '{"name":"Carl","age":7}\n' >carl.json
	cp carl.json "$MNT/users/carl.json" || fail "cp failed"
	atf_check -o match:'"ada"' cat "$MNT/users/ada.json"
	rm "$MNT/users/bob.json" || fail "rm failed"
	ls "$MNT/users" >ls.out || fail "ls failed"
	grep -q carl ls.out && ! grep -q bob ls.out || fail "listing after the workload: $(cat ls.out)"

	# the daemon stores writes and deletes in the background: wait (10 s
	# at most) until the PUT of carl and the DELETE of bob were made
	i=0
	until jq -e '.requests.put >= 1 and .requests.delete >= 1' "$MNT/.costs" >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -le 100 ] || fail "no PUT and DELETE in /.costs after 10 s: $(cat "$MNT/.costs")"
		sleep 0.1
	done
	sleep 0.5
	cat "$MNT/.costs" >costs.json || fail "cannot read .costs"
	jqtrue costs.json '.requests.total == .events.total'
	jqtrue costs.json '.requests.put == .events.PutObjectCommand + .events.CopyObjectCommand'
	jqtrue costs.json '.requests.delete == .events.DeleteObjectCommand + .events.DeleteObjectsCommand'
	jqtrue costs.json '(.total - (.requests.put * .prices.put + .requests.get * .prices.get
	    + .requests.head * .prices.head + .requests.delete * .prices.delete
	    + .requests.list * .prices.list)) | fabs < 1e-12'
	if [ $BACKEND = s3 ]; then
		curl -fsS "$S3DB_TEST_S3_URL/__control/log" >front.json || fail "cannot read the front log"
		for cmd in PutObject GetObject HeadObject DeleteObject DeleteObjects ListObjectsV2 CopyObject; do
			want=$(jq --arg c "$cmd" '[.[] | select(.command == $c)] | length' front.json)
			got=$(jq --arg c "${cmd}Command" '.events[$c]' costs.json)
			[ "$want" = "$got" ] ||
			    fail "$cmd: the front logged $want, /.costs says $got: $(jq -c '[.[] | {command, key}]' front.json)"
		done
		jqtrue costs.json ".requests.total == $(jq length front.json)"
	fi

	# reset, and what is refused
	reset_costs
	# refused by the plugin with a reason in the log (the daemon applies
	# the content at release, after close() returned, so the writer's
	# status cannot carry the EINVAL: see the C test for the return code)
	echo bogus >"$MNT/.costs" 2>write.err
	i=0
	until grep -q 'CostsPlugin: /.costs: unknown command (5 bytes); the only command is "reset"' "$MNT.log"; do
		i=$((i + 1))
		[ $i -le 20 ] || fail "no refusal of 'bogus' in the log: $(tail -n 5 "$MNT.log")"
		sleep 0.1
	done

	# metrics
	cat "$MNT/.metrics" >metrics.json || fail "cannot read .metrics"
	jqtrue metrics.json '.usage.resources.users.inserts == 1 and .usage.resources.users.deletes == 1'
	jqtrue metrics.json '.usage.resources.users.reads >= 1 and .performance.totalRequests >= 3'
	jqtrue metrics.json '.performance.operationTiming.insert.total == 1'
	jqtrue metrics.json '(.errors | has("total") and has("byType") and has("errorRate")) and (.cache | has("hitRate"))'
	cat "$MNT/.metrics.prom" >metrics.prom || fail "cannot read .metrics.prom"
	prom_check metrics.prom
	grep -q '^s3db_operations_total{resource="users",operation="insert"} 1$' metrics.prom ||
	    fail "no insert counter for users: $(head -c 600 metrics.prom)"

	# the thread stops at unmount, after its last flush
	ntasks=$(ls /proc/$DAEMON_PID/task | wc -l)
	[ "$ntasks" -ge 2 ] || fail "the daemon runs $ntasks threads"
	unmount_and_wait
	cli ls plg_metrics >flushed.json 2>cli.err || fail "s3db ls plg_metrics: $(cat cli.err)"
	jqtrue flushed.json 'map(select(.resourceName == "users" and .operation == "insert")) | length == 1'
	jqtrue flushed.json 'map(select(.resourceName == "global")) | length >= 1'
}

atf_test_case costs_and_metrics_through_the_mount cleanup
costs_and_metrics_through_the_mount_head() { common_head; }
costs_and_metrics_through_the_mount_body() { setup; use_local; do_costs_and_metrics_through_the_mount; }
costs_and_metrics_through_the_mount_cleanup() { cleanup_mounts; }

atf_test_case costs_and_metrics_through_the_mount_s3 cleanup
costs_and_metrics_through_the_mount_s3_head() { common_head; }
costs_and_metrics_through_the_mount_s3_body() { setup; use_s3; do_costs_and_metrics_through_the_mount; }
costs_and_metrics_through_the_mount_s3_cleanup() { cleanup_mounts; }

atf_init_test_cases()
{
	atf_add_test_case costs_and_metrics_through_the_mount
	atf_add_test_case costs_and_metrics_through_the_mount_s3
}
