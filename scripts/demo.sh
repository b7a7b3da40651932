#!/usr/bin/env bash
# demo.sh — README set-up command a: installs, builds, and runs the main job
# on the embedded local backend (no server needed): creates a demo database
# in a local directory with sample records and shows it.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash scripts/install-deps.sh >/dev/null
autoreconf -fi >/dev/null 2>&1
mkdir -p build/normal
( cd build/normal && "$top/configure" -q && make -s -j"$(nproc)" ) >/dev/null
s3db="$top/build/normal/src/s3db"
dir=${S3DB_DEMO_DIR:-/tmp/s3dbfs-demo}
rm -rf "$dir"
conn="file://$dir"
echo "+ s3db $conn schema users < contrib/examples/users.schema.json"
"$s3db" "$conn" schema users < contrib/examples/users.schema.json >/dev/null
for rec in \
  '{"id":"ada","name":"Ada Lovelace","email":"ada@example.com","age":36,"region":"europe","tags":["math","engines"],"profile":{"country":"UK"}}' \
  '{"id":"grace","name":"Grace Hopper","email":"grace@example.com","age":85,"region":"america","active":true}' \
  '{"id":"kenji","name":"金田 健二","email":"kenji@example.com","region":"asia","password":"hunter2"}'; do
  echo "+ s3db $conn put users <<< '$rec'"
  printf '%s' "$rec" | "$s3db" "$conn" put users >/dev/null
done
echo "+ s3db $conn resources";            "$s3db" "$conn" resources
echo "+ s3db $conn ls users --ids";       "$s3db" "$conn" ls users --ids
echo "+ s3db $conn get users kenji";      "$s3db" "$conn" get users kenji
echo "+ s3db $conn count users --partition byRegion --values '{\"region\":\"europe\"}'"
"$s3db" "$conn" count users --partition byRegion --values '{"region":"europe"}'
echo "demo database in $dir (connection string $conn)"
