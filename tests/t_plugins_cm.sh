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
# root; every case unmounts in its cleanup.  The helpers named ml_* are
# tests/mountlib.sh's ($MOUNTLIB, exported by the generated program too).

. "${MOUNTLIB:?MOUNTLIB must name tests/mountlib.sh (the generated tests/t_plugins_cm exports it)}"
ML_S3_TAG=plugins-cm

common_head()
{
	ml_mount_head 240 perl curl
}

setup()
{
	ml_setup S3DBFS S3DB_CLI
}

seed_users()
{
	printf '%s' '{"attributes":{"name":"string|required","age":"number|optional"},"timestamps":false}' |
	    ml_cli schema users >/dev/null 2>seed.err || ml_fail "schema: $(cat seed.err)"
	for u in ada bob; do
		printf '{"name":"%s","age":40}' "$u" | ml_cli put users "$u" >/dev/null 2>seed.err ||
		    ml_fail "put $u: $(cat seed.err)"
	done
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
	close_fam(); die "$err\n" if $err;' <"$1" 2>prom.err || ml_fail "$1 is not valid exposition text: $(cat prom.err)"
}

# reset_costs: `echo reset > /.costs`, then /.costs read at once starts
# from zero: the write reaches the plugin when close() flushes it, and the
# next read shows its effect.  Only requests made since may show: the
# MetricsPlugin's thread lists its resources (retention), nothing else
# runs, so anything but LIST requests is a failure.
reset_costs()
{
	echo reset >"$MNT/.costs" || ml_fail "echo reset > .costs failed"
	jq -e '.requests.put == 0 and .requests.get == 0 and .requests.head == 0 and
	       .requests.delete == 0 and .requests.total == .requests.list and
	       .events.total == .requests.total' "$MNT/.costs" >/dev/null 2>&1 ||
		ml_fail "/.costs not reset at once: $(cat "$MNT/.costs")"
}

# ---- the case -----------------------------------------------------------------------

do_costs_and_metrics_through_the_mount()
{
	seed_users
	(umask 077 && cat >config.json <<EOF
{
  "connectionString": "$CLI_C",
  "plugins": [
    "CostsPlugin",
    {"name": "MetricsPlugin", "options": {"flushInterval": 3600000, "batchSize": 10}}
  ],
  "mount": {"log_level": "info"}
}
EOF
	)
	ml_start "$MNT" "$S3DBFS" -o config=config.json "$MNT" -f
	[ -f "$MNT/.costs" ] || ml_fail "no /.costs in the mount: $(ls -a "$MNT")"
	# a quiet start: the daemon's own start-up requests (the metrics
	# thread's retention LISTs) are over when a reset stays at zero and
	# the front's log, cleared just before the reset, stays empty too (a
	# request between the clear and the reset shows in the log only)
	i=0
	while :; do
		[ $BACKEND = s3 ] && ml_front_log_clear
		reset_costs
		sleep 0.3
		if jq -e '.requests.total == 0' "$MNT/.costs" >/dev/null 2>&1; then
			[ $BACKEND = s3 ] || break
			ml_front_log quiet.json
			jq -e 'length == 0' quiet.json >/dev/null && break
		fi
		i=$((i + 1))
		[ $i -lt 10 ] || ml_fail "the daemon never went quiet: $(cat "$MNT/.costs")"
	done

	# the workload
	printf '{"name":"Carl","age":7}\n' >carl.json
	cp carl.json "$MNT/users/carl.json" || ml_fail "cp failed"
	atf_check -o match:'"ada"' cat "$MNT/users/ada.json"
	rm "$MNT/users/bob.json" || ml_fail "rm failed"
	ls "$MNT/users" >ls.out || ml_fail "ls failed"
	grep -q carl ls.out && ! grep -q bob ls.out || ml_fail "listing after the workload: $(cat ls.out)"

	# the daemon stores writes and deletes in the background: wait (10 s
	# at most) until the PUT of carl and the DELETE of bob were made
	ml_wait_json "$MNT/.costs" '.requests.put >= 1 and .requests.delete >= 1' 10
	sleep 0.5
	cat "$MNT/.costs" >costs.json || ml_fail "cannot read .costs"
	if [ $BACKEND = s3 ]; then
		# the log and /.costs are read at one quiet point: a request
		# between the two reads (a background relist) means read again
		i=0
		while :; do
			ml_front_log front.json
			cat "$MNT/.costs" >costs2.json || ml_fail "cannot read .costs"
			cmp -s costs.json costs2.json && break
			mv costs2.json costs.json
			i=$((i + 1))
			[ $i -lt 10 ] || ml_fail "requests kept coming after the workload"
			sleep 0.3
		done
	fi
	ml_jq_true costs.json '.requests.total == .events.total'
	ml_jq_true costs.json '.requests.put == .events.PutObjectCommand + .events.CopyObjectCommand'
	ml_jq_true costs.json '.requests.delete == .events.DeleteObjectCommand + .events.DeleteObjectsCommand'
	ml_jq_true costs.json '(.total - (.requests.put * .prices.put + .requests.get * .prices.get
	    + .requests.head * .prices.head + .requests.delete * .prices.delete
	    + .requests.list * .prices.list)) | fabs < 1e-12'
	if [ $BACKEND = s3 ]; then
		for cmd in PutObject GetObject HeadObject DeleteObject DeleteObjects ListObjectsV2 CopyObject; do
			want=$(jq --arg c "$cmd" '[.[] | select(.command == $c)] | length' front.json)
			got=$(jq --arg c "${cmd}Command" '.events[$c]' costs.json)
			[ "$want" = "$got" ] ||
			    ml_fail "$cmd: the front logged $want, /.costs says $got: $(jq -c '[.[] | {command, key}]' front.json)"
		done
		ml_jq_true costs.json ".requests.total == $(jq length front.json)"
	fi

	# reset, and what is refused
	reset_costs
	# refused by the plugin with a reason in the log (the daemon applies
	# the content at release, after close() returned, so the writer's
	# status cannot carry the EINVAL: see the C test for the return code)
	echo bogus >"$MNT/.costs" 2>write.err
	ml_wait_log "$MNT.log" 'CostsPlugin: /\.costs: unknown command \(5 bytes\); the only command is "reset"' 2

	# metrics
	cat "$MNT/.metrics" >metrics.json || ml_fail "cannot read .metrics"
	ml_jq_true metrics.json '.usage.resources.users.inserts == 1 and .usage.resources.users.deletes == 1'
	ml_jq_true metrics.json '.usage.resources.users.reads >= 1 and .performance.totalRequests >= 3'
	ml_jq_true metrics.json '.performance.operationTiming.insert.total == 1'
	ml_jq_true metrics.json '(.errors | has("total") and has("byType") and has("errorRate")) and (.cache | has("hitRate"))'
	cat "$MNT/.metrics.prom" >metrics.prom || ml_fail "cannot read .metrics.prom"
	prom_check metrics.prom
	grep -q '^s3db_operations_total{resource="users",operation="insert"} 1$' metrics.prom ||
	    ml_fail "no insert counter for users: $(head -c 600 metrics.prom)"

	# the thread stops at unmount, after its last flush
	ntasks=$(ls /proc/$DAEMON_PID/task | wc -l)
	[ "$ntasks" -ge 2 ] || ml_fail "the daemon runs $ntasks threads"
	ml_unmount "$MNT" "$DAEMON_PID"
	ml_cli ls plg_metrics >flushed.json 2>cli.err || ml_fail "s3db ls plg_metrics: $(cat cli.err)"
	ml_jq_true flushed.json 'map(select(.resourceName == "users" and .operation == "insert")) | length == 1'
	ml_jq_true flushed.json 'map(select(.resourceName == "global")) | length >= 1'
}

ml_both costs_and_metrics_through_the_mount

atf_init_test_cases()
{
	ml_add_cases
}
