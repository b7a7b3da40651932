#! /usr/bin/env atf-sh
#
# t_cli.sh — the s3db command (src/cli.c), driven end to end on the local
# backend: every command, its JSON output (checked with jq), and the exit
# statuses scripts rely on: 0 ok, 1 not found, 2 usage, 3 invalid input,
# 4 storage/network/credentials.
#
# The binary is $S3DB_CLI (or the ATF configuration variable S3DB_CLI);
# without it every test fails.  Each test case runs in its own work
# directory (ATF makes one) and keeps its database in ./db.  The helpers
# named ml_* are tests/mountlib.sh's ($MOUNTLIB, exported by the generated
# tests/t_cli too).

. "${MOUNTLIB:?MOUNTLIB must name tests/mountlib.sh (the generated tests/t_cli exports it)}"

# Common setup: exports S3DB_CLI and C (the connection string) for the
# commands atf_check runs, and clears variables that would change them.
setup()
{
	ml_need_programs S3DB_CLI
	ml_clean_env
	C="file://$(pwd)/db"
	export C
	command -v jq >/dev/null || atf_fail "jq is needed by these tests"
}

# Defines resource "users" (name required, age, region, a nested profile,
# a secret, a partition by region).
define_users()
{
	cat >users-def.json <<'EOF'
{
  "attributes": {
    "name": "string|required",
    "age": "number|optional",
    "region": "string|optional",
    "profile": { "country": "string|optional" },
    "password": "secret|optional"
  },
  "partitions": { "byRegion": { "fields": { "region": "string" } } },
  "timestamps": false
}
EOF
	atf_check -s exit:0 -o save:def.out -x '"$S3DB_CLI" "$C" schema users < users-def.json'
}

# put_user ID JSON: stores a record, expecting success.
put_user()
{
	printf '%s' "$2" >rec-in.json
	atf_check -s exit:0 -o save:put.out -x "\"\$S3DB_CLI\" \"\$C\" put users $1 < rec-in.json"
}

# Three users: u1 (eu, pt), u2 (us), u3 (eu, fr).
three_users()
{
	define_users
	put_user u1 '{"name":"Ann","age":31,"region":"eu","profile":{"country":"pt"}}'
	put_user u2 '{"name":"Bob","age":40,"region":"us"}'
	put_user u3 '{"name":"Cy","age":25,"region":"eu","profile":{"country":"fr"}}'
}

# ---- help, version, usage ---------------------------------------------------

atf_test_case help_prints_usage_on_stdout
help_prints_usage_on_stdout_body()
{
	setup
	atf_check -s exit:0 -o save:help.out "$S3DB_CLI" --help
	for word in 'Usage: s3db' resources ' ls ' ' get ' ' put ' ' update ' ' rm ' \
	    ' count ' ' schema ' ' query ' --partition --values --limit --offset --ids \
	    --passphrase-file --parallelism 'Exit status'; do
		grep -qF -- "$word" help.out || atf_fail "--help does not mention '$word'"
	done
	atf_check -s exit:0 -o file:help.out "$S3DB_CLI" -h
}

atf_test_case version_prints_the_version
version_prints_the_version_body()
{
	setup
	atf_check -s exit:0 -o match:'^s3db [0-9]+\.[0-9]+\.[0-9]+$' "$S3DB_CLI" --version
	atf_check -s exit:0 -o match:'^s3db [0-9]' "$S3DB_CLI" -V
}

atf_test_case usage_errors_exit_2
usage_errors_exit_2_body()
{
	setup
	define_users
	atf_check -s exit:2 -e match:'^s3db: usage: ' "$S3DB_CLI"
	atf_check -s exit:2 -e match:'^s3db: usage: .*COMMAND' "$S3DB_CLI" "$C"
	atf_check -s exit:2 -e match:"unknown command 'frobnicate'" "$S3DB_CLI" "$C" frobnicate
	atf_check -s exit:2 -e match:"unknown option '--bogus'" "$S3DB_CLI" --bogus "$C" resources
	atf_check -s exit:2 -e match:'get takes' "$S3DB_CLI" "$C" get users
	atf_check -s exit:2 -e match:'get takes' "$S3DB_CLI" "$C" get users a b
	atf_check -s exit:2 -e match:'rm takes' "$S3DB_CLI" "$C" rm users
	atf_check -s exit:2 -e match:'resources takes' "$S3DB_CLI" "$C" resources extra
	atf_check -s exit:2 -e match:'--ids goes with ls' "$S3DB_CLI" "$C" count users --ids
	atf_check -s exit:2 -e match:'get takes no --partition' \
	    "$S3DB_CLI" "$C" get users u1 --partition byRegion
	atf_check -s exit:2 -e match:'--values needs --partition' \
	    "$S3DB_CLI" "$C" ls users --values '{"region":"eu"}'
	atf_check -s exit:2 -e match:'--limit takes' "$S3DB_CLI" "$C" ls users --limit ten
	atf_check -s exit:2 -e match:'--offset takes' "$S3DB_CLI" "$C" ls users --offset -1
	atf_check -s exit:2 -e match:'--parallelism takes' "$S3DB_CLI" --parallelism 0 "$C" resources
	atf_check -s exit:2 -e match:'needs a value' "$S3DB_CLI" "$C" ls users --limit
}

atf_test_case passphrase_is_never_an_argument
passphrase_is_never_an_argument_body()
{
	setup
	atf_check -s exit:2 -e save:err "$S3DB_CLI" --passphrase Zs3cr3tPW "$C" resources
	atf_check -s exit:0 -o ignore grep -F -- '--passphrase-file' err
	atf_check -s exit:1 grep -F Zs3cr3tPW err
	atf_check -s exit:2 -e save:err "$S3DB_CLI" --passphrase=Zs3cr3tPW "$C" resources
	atf_check -s exit:1 grep -F Zs3cr3tPW err
	# nor a URL option
	atf_check -s exit:2 -e save:err "$S3DB_CLI" "$C?passphrase=Zs3cr3tPW" resources
	atf_check -s exit:0 -o ignore grep -F passphrase err
	atf_check -s exit:1 grep -F Zs3cr3tPW err
	# an unreadable passphrase file is a usage error
	atf_check -s exit:2 -e match:'^s3db: --passphrase-file: ' \
	    "$S3DB_CLI" --passphrase-file ./no-such-file "$C" resources
	: >empty-pass
	atf_check -s exit:2 -e match:'is empty' \
	    "$S3DB_CLI" --passphrase-file empty-pass "$C" resources
}

atf_test_case bad_connection_string_exits_2_without_the_secret
bad_connection_string_exits_2_without_the_secret_body()
{
	setup
	atf_check -s exit:2 -e save:err "$S3DB_CLI" 's3://AK:Zs3cr3tK@bucket?foo=1' resources
	atf_check -s exit:0 -o ignore grep -E "^s3db: open: connection string: unknown option 'foo'" err
	atf_check -s exit:1 grep -F Zs3cr3tK err
	atf_check -s exit:2 -e save:err "$S3DB_CLI" 'http://AK:Zs3cr3tK@host:99999/b' resources
	atf_check -s exit:0 -o ignore grep -F "bad port in 'http://AK:***@host:99999/b'" err
	atf_check -s exit:1 grep -F Zs3cr3tK err
	atf_check -s exit:2 -e match:'no scheme' "$S3DB_CLI" just-a-bucket resources
}

# ---- schema and resources ------------------------------------------------------

atf_test_case schema_defines_and_prints_the_definition
schema_defines_and_prints_the_definition_body()
{
	setup
	define_users
	ml_jq_true def.out '.attributes.name == "string|required"'
	ml_jq_true def.out '.attributes.password == "secret|optional"'
	ml_jq_true def.out '.partitions.byRegion.fields.region == "string"'
	# printing: stdin not given (here /dev/null, i.e. empty)
	atf_check -s exit:0 -o save:printed.out -x '"$S3DB_CLI" "$C" schema users </dev/null'
	ml_jq_true printed.out '.attributes.name == "string|required"'
	atf_check -s exit:0 -o ignore cmp def.out printed.out
	# a changed definition becomes the current one
	jq '.attributes.email = "string|optional"' users-def.json >users-def2.json
	atf_check -s exit:0 -o save:def2.out -x '"$S3DB_CLI" "$C" schema users < users-def2.json'
	ml_jq_true def2.out '.attributes.email == "string|optional"'
	atf_check -s exit:0 -o save:printed2.out -x '"$S3DB_CLI" "$C" schema users </dev/null'
	ml_jq_true printed2.out '.attributes.email == "string|optional"'
	# a fresh process sees it too
	atf_check -s exit:0 -o inline:'[\n  "users"\n]\n' "$S3DB_CLI" "$C" resources
}

atf_test_case schema_errors
schema_errors_body()
{
	setup
	atf_check -s exit:1 -e match:"^s3db: schema nobody: no such resource 'nobody'" \
	    -x '"$S3DB_CLI" "$C" schema nobody </dev/null'
	printf '{"attributes": {' >bad.json
	atf_check -s exit:3 -e match:'^s3db: schema users: invalid JSON' \
	    -x '"$S3DB_CLI" "$C" schema users < bad.json'
	printf '[1, 2]' >array.json
	atf_check -s exit:3 -e match:'JSON object' -x '"$S3DB_CLI" "$C" schema users < array.json'
	atf_check -s exit:0 -o inline:'[]\n' "$S3DB_CLI" "$C" resources
}

atf_test_case resources_lists_names_sorted
resources_lists_names_sorted_body()
{
	setup
	atf_check -s exit:0 -o inline:'[]\n' "$S3DB_CLI" "$C" resources
	echo '{"attributes":{"title":"string"}}' >def.json
	for r in zebras apples mangos; do
		atf_check -s exit:0 -o ignore -x "\"\$S3DB_CLI\" \"\$C\" schema $r < def.json"
	done
	atf_check -s exit:0 -o inline:'[\n  "apples",\n  "mangos",\n  "zebras"\n]\n' \
	    "$S3DB_CLI" "$C" resources
}

# ---- put / get ----------------------------------------------------------------------

atf_test_case put_with_id_argument_inserts_and_prints_the_record
put_with_id_argument_inserts_and_prints_the_record_body()
{
	setup
	define_users
	put_user u1 '{"name":"Ann","age":31,"region":"eu"}'
	ml_jq_true put.out '.id == "u1" and .name == "Ann" and .age == 31 and .region == "eu"'
	atf_check -s exit:0 -o save:get.out "$S3DB_CLI" "$C" get users u1
	ml_jq_true get.out '.id == "u1" and .name == "Ann" and .age == 31 and .region == "eu"'
}

atf_test_case put_takes_the_id_from_the_record
put_takes_the_id_from_the_record_body()
{
	setup
	define_users
	put_user "" '{"id":"u7","name":"Gus"}'
	ml_jq_true put.out '.id == "u7" and .name == "Gus"'
	atf_check -s exit:0 -o save:get.out "$S3DB_CLI" "$C" get users u7
	ml_jq_true get.out '.name == "Gus"'
	# the same id in both places is fine, different ids are not
	put_user u7 '{"id":"u7","name":"Gus2"}'
	printf '{"id":"u8","name":"Hal"}' >rec.json
	atf_check -s exit:3 -e match:'differs' -x '"$S3DB_CLI" "$C" put users u9 < rec.json'
	printf '{"id":42,"name":"Hal"}' >rec.json
	atf_check -s exit:3 -e match:'must be a string' -x '"$S3DB_CLI" "$C" put users < rec.json'
	atf_check -s exit:1 -e ignore "$S3DB_CLI" "$C" get users u8
	atf_check -s exit:1 -e ignore "$S3DB_CLI" "$C" get users u9
}

atf_test_case put_without_id_generates_one
put_without_id_generates_one_body()
{
	setup
	define_users
	put_user "" '{"name":"Ida"}'
	ml_jq_true put.out '(.id | type == "string" and length > 0) and .name == "Ida"'
	id=$(jq -r .id put.out)
	# "--": a generated id may start with '-' (nanoid's alphabet has it)
	atf_check -s exit:0 -o save:get.out "$S3DB_CLI" "$C" get users -- "$id"
	ml_jq_true get.out '.name == "Ida"'
	atf_check -s exit:0 -o inline:"$id\n" "$S3DB_CLI" "$C" ls users --ids
}

atf_test_case an_id_starting_with_a_dash_goes_after_double_dash
an_id_starting_with_a_dash_goes_after_double_dash_body()
{
	setup
	define_users
	printf '%s' '{"name":"Dash"}' >rec-in.json
	atf_check -s exit:0 -o save:put.out -x '"$S3DB_CLI" "$C" put users -- -d1 < rec-in.json'
	ml_jq_true put.out '.id == "-d1" and .name == "Dash"'
	atf_check -s exit:0 -o save:get.out "$S3DB_CLI" "$C" get users -- -d1
	ml_jq_true get.out '.id == "-d1" and .name == "Dash"'
	# without "--" the id reads as options: a usage error that says why
	atf_check -s exit:2 -e match:"unknown option '-d'.*goes after --" \
	    "$S3DB_CLI" "$C" get users -d1
	atf_check -s exit:0 -o inline:'-d1\n' "$S3DB_CLI" "$C" ls users --ids
	atf_check -s exit:0 -o empty "$S3DB_CLI" "$C" rm users -- -d1
	atf_check -s exit:0 -o inline:'0\n' "$S3DB_CLI" "$C" count users
}

atf_test_case put_replaces_an_existing_record
put_replaces_an_existing_record_body()
{
	setup
	define_users
	put_user u1 '{"name":"Ann","age":31,"region":"eu"}'
	put_user u1 '{"name":"Anne"}'
	ml_jq_true put.out '.id == "u1" and .name == "Anne" and (has("age") | not) and (has("region") | not)'
	atf_check -s exit:0 -o save:get.out "$S3DB_CLI" "$C" get users u1
	ml_jq_true get.out '.name == "Anne" and (has("age") | not)'
	atf_check -s exit:0 -o inline:'1\n' "$S3DB_CLI" "$C" count users
	# the old partition entry went with the old region
	atf_check -s exit:0 -o inline:'0\n' \
	    "$S3DB_CLI" "$C" count users --partition byRegion --values '{"region":"eu"}'
}

atf_test_case put_refuses_invalid_input_with_status_3
put_refuses_invalid_input_with_status_3_body()
{
	setup
	define_users
	printf '{"name": "Ann",' >bad.json
	atf_check -s exit:3 -e match:'^s3db: put users/u1: invalid JSON' \
	    -x '"$S3DB_CLI" "$C" put users u1 < bad.json'
	printf '{"name":"Ann"} {"name":"Bob"}' >two.json
	atf_check -s exit:3 -e match:'invalid JSON' -x '"$S3DB_CLI" "$C" put users u1 < two.json'
	printf '["Ann"]' >array.json
	atf_check -s exit:3 -e match:'JSON object' -x '"$S3DB_CLI" "$C" put users u1 < array.json'
	atf_check -s exit:3 -e match:'invalid JSON: no input' \
	    -x '"$S3DB_CLI" "$C" put users u1 </dev/null'
	# validation: name is required, age a number
	printf '{"age":"old"}' >invalid.json
	atf_check -s exit:3 -e match:'^s3db: ' -x '"$S3DB_CLI" "$C" put users u1 < invalid.json'
	# an id unusable as a key
	printf '{"name":"Ann"}' >ok.json
	atf_check -s exit:3 -e match:'^s3db: ' -x '"$S3DB_CLI" "$C" put users a/b < ok.json'
	atf_check -s exit:0 -o inline:'0\n' "$S3DB_CLI" "$C" count users
	# a resource that does not exist
	atf_check -s exit:1 -e match:"no such resource 'ghosts'" \
	    -x '"$S3DB_CLI" "$C" put ghosts g1 < ok.json'
}

atf_test_case get_missing_record_exits_1
get_missing_record_exits_1_body()
{
	setup
	define_users
	atf_check -s exit:1 -e match:'^s3db: get( users/nope)?: .*nope' "$S3DB_CLI" "$C" get users nope
	atf_check -s exit:1 -e match:"no such resource 'ghosts'" "$S3DB_CLI" "$C" get ghosts g1
	atf_check -s exit:3 -e match:'^s3db: ' "$S3DB_CLI" "$C" get users 'a/b'
}

atf_test_case output_is_json_pretty_printed_with_two_spaces
output_is_json_pretty_printed_with_two_spaces_body()
{
	setup
	define_users
	put_user u1 '{"name":"An \"A\" /\\ \u00e9","age":0.1,"region":"eu"}'
	atf_check -s exit:0 -o save:get.out "$S3DB_CLI" "$C" get users u1
	# two-space indentation, "key": value, numbers in JavaScript's form
	atf_check -s exit:0 -o ignore grep -Ex '  "age": 0\.1,?' get.out
	atf_check -s exit:0 -o ignore grep -Ex '  "id": "u1",?' get.out
	atf_check -s exit:0 -o ignore grep -F '  "name": "An \"A\" /\\ é"' get.out
	atf_check -s exit:0 -o inline:'{\n' head -n 1 get.out
	atf_check -s exit:0 -o inline:'}\n' tail -n 1 get.out
	atf_check -s exit:1 grep -q "$(printf '\t')" get.out
	ml_jq_true get.out '.name == "An \"A\" /\\ é" and .age == 0.1'
	# empty containers as JSON.stringify writes them
	echo '{"attributes":{"title":"string"}}' >def.json
	atf_check -s exit:0 -o ignore -x '"$S3DB_CLI" "$C" schema empty < def.json'
	atf_check -s exit:0 -o inline:'[]\n' "$S3DB_CLI" "$C" ls empty
	printf '{"title":"x"}' >f.json
	atf_check -s exit:0 -o inline:'[]\n' -x '"$S3DB_CLI" "$C" query users < f.json'
}

# ---- update ---------------------------------------------------------------------

atf_test_case update_merges_a_patch
update_merges_a_patch_body()
{
	setup
	three_users
	printf '{"age":32,"profile":{"country":"es"}}' >patch.json
	atf_check -s exit:0 -o save:upd.out -x '"$S3DB_CLI" "$C" update users u1 < patch.json'
	ml_jq_true upd.out '.id == "u1" and .name == "Ann" and .age == 32 and .region == "eu" and .profile.country == "es"'
	atf_check -s exit:0 -o save:get.out "$S3DB_CLI" "$C" get users u1
	ml_jq_true get.out '.name == "Ann" and .age == 32 and .profile.country == "es"'
}

atf_test_case update_errors
update_errors_body()
{
	setup
	three_users
	printf '{"age":33}' >patch.json
	atf_check -s exit:1 -e match:'nope' -x '"$S3DB_CLI" "$C" update users nope < patch.json'
	printf '{"age":' >bad.json
	atf_check -s exit:3 -e match:'invalid JSON' -x '"$S3DB_CLI" "$C" update users u1 < bad.json'
	printf '{"age":"x"}' >invalid.json
	atf_check -s exit:3 -e match:'^s3db: ' -x '"$S3DB_CLI" "$C" update users u1 < invalid.json'
	printf '{"id":"u9"}' >idchange.json
	atf_check -s exit:3 -e match:'"id"' -x '"$S3DB_CLI" "$C" update users u1 < idchange.json'
	atf_check -s exit:0 -o save:get.out "$S3DB_CLI" "$C" get users u1
	ml_jq_true get.out '.age == 31'
}

# ---- rm --------------------------------------------------------------------------

atf_test_case rm_deletes_records
rm_deletes_records_body()
{
	setup
	three_users
	atf_check -s exit:0 -o empty -e empty "$S3DB_CLI" "$C" rm users u1 u3
	atf_check -s exit:0 -o inline:'u2\n' "$S3DB_CLI" "$C" ls users --ids
	atf_check -s exit:1 -e ignore "$S3DB_CLI" "$C" get users u1
	atf_check -s exit:0 -o inline:'0\n' \
	    "$S3DB_CLI" "$C" count users --partition byRegion --values '{"region":"eu"}'
}

atf_test_case rm_missing_record_exits_1_and_deletes_the_others
rm_missing_record_exits_1_and_deletes_the_others_body()
{
	setup
	three_users
	atf_check -s exit:1 -e match:'nope' "$S3DB_CLI" "$C" rm users u1 nope u2
	atf_check -s exit:0 -o inline:'u3\n' "$S3DB_CLI" "$C" ls users --ids
	atf_check -s exit:1 -e match:"no such resource 'ghosts'" "$S3DB_CLI" "$C" rm ghosts g1
}

# ---- ls / count / query -----------------------------------------------------------

atf_test_case ls_prints_records_as_a_json_array
ls_prints_records_as_a_json_array_body()
{
	setup
	three_users
	atf_check -s exit:0 -o save:ls.out "$S3DB_CLI" "$C" ls users
	ml_jq_true ls.out 'type == "array" and length == 3'
	ml_jq_true ls.out '[.[].id] == ["u1","u2","u3"]'
	ml_jq_true ls.out '.[1].name == "Bob" and .[1].age == 40'
	atf_check -s exit:1 -e match:"no such resource 'ghosts'" "$S3DB_CLI" "$C" ls ghosts
}

atf_test_case ls_ids_prints_one_id_per_line
ls_ids_prints_one_id_per_line_body()
{
	setup
	three_users
	atf_check -s exit:0 -o inline:'u1\nu2\nu3\n' "$S3DB_CLI" "$C" ls users --ids
	atf_check -s exit:0 -o inline:'u1\nu2\nu3\n' "$S3DB_CLI" "$C" ls --ids users
}

atf_test_case ls_limit_and_offset_window_the_list
ls_limit_and_offset_window_the_list_body()
{
	setup
	three_users
	atf_check -s exit:0 -o inline:'u2\nu3\n' "$S3DB_CLI" "$C" ls users --ids --offset 1
	atf_check -s exit:0 -o inline:'u1\nu2\n' "$S3DB_CLI" "$C" ls users --ids --limit 2
	atf_check -s exit:0 -o inline:'u2\n' "$S3DB_CLI" "$C" ls users --ids --limit 1 --offset 1
	atf_check -s exit:0 -o save:ls.out "$S3DB_CLI" "$C" ls users --limit 1 --offset 2
	ml_jq_true ls.out 'length == 1 and .[0].id == "u3"'
	atf_check -s exit:0 -o inline:'' "$S3DB_CLI" "$C" ls users --ids --offset 5
}

atf_test_case ls_lists_one_partition
ls_lists_one_partition_body()
{
	setup
	three_users
	atf_check -s exit:0 -o inline:'u1\nu3\n' \
	    "$S3DB_CLI" "$C" ls users --ids --partition byRegion --values '{"region":"eu"}'
	atf_check -s exit:0 -o save:ls.out \
	    "$S3DB_CLI" "$C" ls users --partition byRegion --values '{"region":"us"}'
	ml_jq_true ls.out 'length == 1 and .[0].id == "u2" and .[0].name == "Bob"'
	atf_check -s exit:0 -o inline:'u1\nu2\nu3\n' "$S3DB_CLI" "$C" ls users --ids --partition byRegion
	atf_check -s exit:3 -e match:'^s3db: --values: invalid JSON' \
	    "$S3DB_CLI" "$C" ls users --partition byRegion --values '{region:eu}'
	atf_check -s exit:3 -e match:'JSON object' \
	    "$S3DB_CLI" "$C" ls users --partition byRegion --values '["eu"]'
}

atf_test_case count_counts_records
count_counts_records_body()
{
	setup
	three_users
	atf_check -s exit:0 -o inline:'3\n' "$S3DB_CLI" "$C" count users
	atf_check -s exit:0 -o inline:'2\n' \
	    "$S3DB_CLI" "$C" count users --partition byRegion --values '{"region":"eu"}'
	atf_check -s exit:0 -o inline:'0\n' \
	    "$S3DB_CLI" "$C" count users --partition byRegion --values '{"region":"asia"}'
	atf_check -s exit:1 -e match:"no such resource 'ghosts'" "$S3DB_CLI" "$C" count ghosts
}

atf_test_case query_prints_matching_records
query_prints_matching_records_body()
{
	setup
	three_users
	printf '{"region":"eu"}' >f.json
	atf_check -s exit:0 -o save:q.out -x '"$S3DB_CLI" "$C" query users < f.json'
	ml_jq_true q.out '[.[].id] == ["u1","u3"]'
	printf '{"region":"eu","age":25}' >f.json
	atf_check -s exit:0 -o save:q.out -x '"$S3DB_CLI" "$C" query users < f.json'
	ml_jq_true q.out '[.[].id] == ["u3"]'
	printf '{"profile.country":"pt"}' >f.json
	atf_check -s exit:0 -o save:q.out -x '"$S3DB_CLI" "$C" query users < f.json'
	ml_jq_true q.out '[.[].id] == ["u1"]'
	printf '{}' >f.json
	atf_check -s exit:0 -o save:q.out -x '"$S3DB_CLI" "$C" query users --limit 2 < f.json'
	ml_jq_true q.out '[.[].id] == ["u1","u2"]'
	printf '{"region":"eu"}' >f.json
	atf_check -s exit:0 -o save:q.out \
	    -x '"$S3DB_CLI" "$C" query users --partition byRegion --values "{\"region\":\"eu\"}" < f.json'
	ml_jq_true q.out '[.[].id] == ["u1","u3"]'
}

atf_test_case query_errors
query_errors_body()
{
	setup
	three_users
	printf '{"region":' >bad.json
	atf_check -s exit:3 -e match:'^s3db: query users: invalid JSON' \
	    -x '"$S3DB_CLI" "$C" query users < bad.json'
	printf '"eu"' >str.json
	atf_check -s exit:3 -e match:'JSON object' -x '"$S3DB_CLI" "$C" query users < str.json'
	printf '{}' >f.json
	atf_check -s exit:1 -e match:"no such resource 'ghosts'" \
	    -x '"$S3DB_CLI" "$C" query ghosts < f.json'
}

# ---- secrets, storage errors ------------------------------------------------------

atf_test_case secret_fields_use_the_passphrase_file
secret_fields_use_the_passphrase_file_body()
{
	setup
	define_users
	printf 'correct horse battery\n' >pass
	printf '{"name":"Ann","password":"Zplain-pw-7"}' >rec.json
	atf_check -s exit:0 -o save:put.out \
	    -x '"$S3DB_CLI" --passphrase-file pass "$C" put users u1 < rec.json'
	ml_jq_true put.out '.password == "Zplain-pw-7"'
	# stored encrypted: the plain text is nowhere in the database
	atf_check -s exit:1 grep -rqF Zplain-pw-7 db
	atf_check -s exit:0 -o save:get.out "$S3DB_CLI" --passphrase-file pass "$C" get users u1
	ml_jq_true get.out '.password == "Zplain-pw-7"'
	# S3DB_PASSPHRASE is the same passphrase (the file's trailing newline
	# is not part of it)
	atf_check -s exit:0 -o save:get2.out \
	    -x 'S3DB_PASSPHRASE="correct horse battery" "$S3DB_CLI" "$C" get users u1'
	ml_jq_true get2.out '.password == "Zplain-pw-7"'
}

atf_test_case storage_errors_exit_4
storage_errors_exit_4_body()
{
	setup
	# nothing listens on port 1; no retries, so this is quick
	atf_check -s exit:4 -e save:err \
	    "$S3DB_CLI" 'http://AK:Zs3cr3tN@127.0.0.1:1/bucket?retries=0&timeout=5000' resources
	atf_check -s exit:0 -o ignore grep -E '^s3db: open: ' err
	atf_check -s exit:1 grep -F Zs3cr3tN err
	# a database directory that is a regular file
	echo 'not a directory' >plain
	atf_check -s exit:4 -e match:'^s3db: open: ' "$S3DB_CLI" "file://$(pwd)/plain" resources
}

atf_init_test_cases()
{
	atf_add_test_case help_prints_usage_on_stdout
	atf_add_test_case version_prints_the_version
	atf_add_test_case usage_errors_exit_2
	atf_add_test_case passphrase_is_never_an_argument
	atf_add_test_case bad_connection_string_exits_2_without_the_secret
	atf_add_test_case schema_defines_and_prints_the_definition
	atf_add_test_case schema_errors
	atf_add_test_case resources_lists_names_sorted
	atf_add_test_case put_with_id_argument_inserts_and_prints_the_record
	atf_add_test_case put_takes_the_id_from_the_record
	atf_add_test_case put_without_id_generates_one
	atf_add_test_case an_id_starting_with_a_dash_goes_after_double_dash
	atf_add_test_case put_replaces_an_existing_record
	atf_add_test_case put_refuses_invalid_input_with_status_3
	atf_add_test_case get_missing_record_exits_1
	atf_add_test_case output_is_json_pretty_printed_with_two_spaces
	atf_add_test_case update_merges_a_patch
	atf_add_test_case update_errors
	atf_add_test_case rm_deletes_records
	atf_add_test_case rm_missing_record_exits_1_and_deletes_the_others
	atf_add_test_case ls_prints_records_as_a_json_array
	atf_add_test_case ls_ids_prints_one_id_per_line
	atf_add_test_case ls_limit_and_offset_window_the_list
	atf_add_test_case ls_lists_one_partition
	atf_add_test_case count_counts_records
	atf_add_test_case query_prints_matching_records
	atf_add_test_case query_errors
	atf_add_test_case secret_fields_use_the_passphrase_file
	atf_add_test_case storage_errors_exit_4
}
