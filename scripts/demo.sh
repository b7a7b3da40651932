#!/usr/bin/env bash
# demo.sh — README set-up command a: installs, builds, and runs the main job
# on the embedded local backend (no server needed): creates a demo database
# in a local directory with sample records, mounts it with s3dbfs, and shows
# ls, cat, an edit and grep -r on it.  The mount stays up at the end (unmount
# with: fusermount3 -u /tmp/s3dbfs-demo/mnt); S3DBFS_DEMO_UNMOUNT=1 unmounts.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash scripts/install-deps.sh >/dev/null
autoreconf -fi >/dev/null 2>&1
mkdir -p build/normal
( cd build/normal && "$top/configure" -q && make -s -j"$(nproc)" ) >/dev/null
s3db="$top/build/normal/src/s3db"
s3dbfs="$top/build/normal/src/s3dbfs"
base=${S3DB_DEMO_DIR:-/tmp/s3dbfs-demo}
db=$base/db mnt=$base/mnt
grep -q " $mnt fuse" /proc/mounts && fusermount3 -u "$mnt"
rm -rf "$db"
mkdir -p "$db" "$mnt"
conn="file://$db"
run() { printf '\n$ %s\n' "$*"; "$@"; }
sh_run() { printf '\n$ %s\n' "$1"; bash -c "$1"; }

echo "== a demo database at $conn, filled with the s3db CLI"
"$s3db" "$conn" schema users < contrib/examples/users.schema.json >/dev/null
for rec in \
  '{"id":"ada","name":"Ada Lovelace","email":"ada@example.com","age":36,"region":"europe","tags":["math","engines"],"profile":{"country":"UK","bio":"first programmer"}}' \
  '{"id":"grace","name":"Grace Hopper","email":"grace@example.com","age":85,"region":"america","active":true,"tags":["cobol"]}' \
  '{"id":"kenji","name":"金田 健二","email":"kenji@example.com","region":"asia","password":"hunter2"}'; do
  printf '%s' "$rec" | "$s3db" "$conn" put users >/dev/null
done

echo "== mounted with s3dbfs"
run "$s3dbfs" "$conn" "$mnt"
run ls "$mnt"
run ls -l "$mnt/users"
run cat "$mnt/users/ada.json"
sh_run "sed -i 's/\"age\": 36/\"age\": 37/' $mnt/users/ada.json"
sh_run "cat > $mnt/users/alan.json <<'REC'
{\"name\": \"Alan Turing\", \"email\": \"alan@example.com\", \"region\": \"europe\", \"tags\": [\"math\"]}
REC"
run grep -r math "$mnt/users"
run ls "$mnt/users/.partitions/byRegion/region=europe"
echo
echo "== the edit is in the database (read back with the CLI)"
run "$s3db" "$conn" get users ada
if [ "${S3DBFS_DEMO_UNMOUNT:-0}" = 1 ]; then
  fusermount3 -u "$mnt"
  echo "unmounted $mnt"
else
  echo
  echo "the demo stays mounted at $mnt (unmount: fusermount3 -u $mnt)"
fi
