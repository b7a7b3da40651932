#!/usr/bin/env bash
# t_front.sh — smoke checks of the strict S3 front (tests/servers/s3front.js),
# and of what it does where s3rver answers unlike AWS (listing order and
# pagination, DeleteObjects, ranges, keys with empty, '.' and '..' segments).
#
# Talks to the front with curl's own SigV4 signer (--aws-sigv4) and, for
# what curl cannot produce (a skewed date, an unsigned x-amz-* header, a
# presigned URL) or cannot do fast (1500 PUTs), with small SigV4 signers
# written here in node.  Prints one PASS/FAIL line per check and a summary;
# exits 0 only when all pass.
#
# Uses the servers named by S3DB_TEST_* when they are set (eval "$(tests/
# servers/servers.sh env)"); otherwise starts its own in a temporary run
# directory and stops them on exit.  Leaves fault rules cleared behind.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
servers="$top/tests/servers/servers.sh"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/t_front.XXXXXX")
own_rundir=

cleanup() {
  if [ -n "${CTL:-}" ]; then curl -s -o /dev/null -X DELETE "$CTL/faults" || true; fi
  if [ -n "$own_rundir" ]; then
    S3DB_TEST_RUNDIR="$own_rundir" "$servers" stop >/dev/null 2>&1 || true
    rm -rf "$own_rundir"
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

if [ -z "${S3DB_TEST_S3_URL:-}" ] || ! curl -sf -o /dev/null "$S3DB_TEST_S3_URL/__control/health"; then
  own_rundir="$tmp.run"
  S3DB_TEST_RUNDIR="$own_rundir" "$servers" start >/dev/null || { echo "FAIL: cannot start the servers"; exit 1; }
  eval "$(S3DB_TEST_RUNDIR="$own_rundir" "$servers" env)"
fi

URL=$S3DB_TEST_S3_URL
B=$S3DB_TEST_S3_BUCKET
AK=$S3DB_TEST_ACCESS_KEY
SK=$S3DB_TEST_SECRET_KEY
CTL=$URL/__control
P="tfront-$$-$(date +%s)"           # key prefix of this run

pass=0 fail=0
ok()  { echo "PASS: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1${2:+ ($2)}"; fail=$((fail + 1)); }
# check DESC CMD...: PASS when CMD succeeds.
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }
# COND; verdict DESC: PASS when COND (the previous command) succeeded.
verdict() { if [ $? = 0 ]; then ok "$1"; else bad "$1"; fi; }

# s3 ARGS...: curl signed by curl; writes the body to $tmp/body, prints
# the status.  x-amz-content-sha256 is UNSIGNED-PAYLOAD unless given.
s3() {
  local hash=UNSIGNED-PAYLOAD a
  for a in "$@"; do case $a in x-amz-content-sha256:*) hash=;; esac; done
  curl -s -o "$tmp/body" -D "$tmp/headers" -w '%{http_code}' \
    --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AK:$SK" \
    ${hash:+-H "x-amz-content-sha256: $hash"} "$@"
}
body_has() { grep -q -- "$1" "$tmp/body"; }
header_is() { tr -d '\r' <"$tmp/headers" | grep -qi -- "^$1: $2\$"; }
ctl_post() { curl -s -o "$tmp/ctl" -w '%{http_code}' -X POST -H 'Content-Type: application/json' -d "$1" "$CTL/faults"; }
clear_faults() { curl -s -o /dev/null -X DELETE "$CTL/faults"; }

# An independent SigV4 signer (node, core modules only):
#   node sign.js METHOD URL [--body FILE] [--date YYYYMMDDTHHMMSSZ]
#     [--header 'name: value']... [--unsigned 'name: value']... [--presign SECONDS]
#   Prints the HTTP status, then the body.
cat >"$tmp/sign.js" <<'EOF'
'use strict';
const http = require('http'), crypto = require('crypto'), fs = require('fs');
const [method, url, ...rest] = process.argv.slice(2);
const ak = process.env.AK, sk = process.env.SK, region = 'us-east-1';
let body = Buffer.alloc(0), date = null, presign = null;
const signed = [], unsigned = [];
for (let i = 0; i < rest.length; i += 2) {
  const v = rest[i + 1];
  if (rest[i] === '--body') body = fs.readFileSync(v);
  else if (rest[i] === '--date') date = v;
  else if (rest[i] === '--presign') presign = Number(v);
  else if (rest[i] === '--header') signed.push(v.split(/:\s*/, 2));
  else if (rest[i] === '--unsigned') unsigned.push(v.split(/:\s*/, 2));
}
const u = new URL(url);
const amzDate = date || new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '');
const day = amzDate.slice(0, 8), scope = `${day}/${region}/s3/aws4_request`;
const enc = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
const h = (d) => crypto.createHash('sha256').update(d).digest('hex');
const mac = (k, d) => crypto.createHmac('sha256', k).update(d).digest();
const q = [...u.searchParams];
const hdrs = [['host', u.host], ...signed.map(([n, v]) => [n.toLowerCase(), v])];
let payload = h(body);
if (presign !== null) {
  payload = 'UNSIGNED-PAYLOAD';
  q.push(['X-Amz-Algorithm', 'AWS4-HMAC-SHA256'], ['X-Amz-Credential', `${ak}/${scope}`],
    ['X-Amz-Date', amzDate], ['X-Amz-Expires', String(presign)]);
} else {
  hdrs.push(['x-amz-date', amzDate], ['x-amz-content-sha256', payload]);
}
hdrs.sort((a, b) => (a[0] < b[0] ? -1 : 1));
const sh = hdrs.map((x) => x[0]).join(';');
if (presign !== null) q.push(['X-Amz-SignedHeaders', sh]);
const cq = q.map(([n, v]) => [enc(n), enc(v)]).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : 1))
  .map(([n, v]) => `${n}=${v}`).join('&');
const creq = [method, u.pathname, cq, hdrs.map(([n, v]) => `${n}:${v}\n`).join(''), sh, payload].join('\n');
const sts = `AWS4-HMAC-SHA256\n${amzDate}\n${scope}\n${h(creq)}`;
let key = mac('AWS4' + sk, day);
for (const p of [region, 's3', 'aws4_request']) key = mac(key, p);
const sig = mac(key, sts).toString('hex');
const headers = Object.fromEntries(hdrs.filter(([n]) => n !== 'host'));
for (const [n, v] of unsigned) headers[n] = v;
let path = u.pathname + (cq ? '?' + cq : '');
if (presign !== null) path += `&X-Amz-Signature=${sig}`;
else headers.authorization = `AWS4-HMAC-SHA256 Credential=${ak}/${scope}, SignedHeaders=${sh}, Signature=${sig}`;
const r = http.request({ host: u.hostname, port: u.port, method, path, headers }, (res) => {
  let d = ''; res.on('data', (c) => (d += c)); res.on('end', () => console.log(res.statusCode + '\n' + d));
});
r.on('error', (e) => console.log('000\n' + e.message));
r.end(body);
EOF
sign() { AK=$AK SK=$SK node "$tmp/sign.js" "$@" >"$tmp/sbody"; head -n 1 "$tmp/sbody"; }
sbody_has() { grep -q -- "$1" "$tmp/sbody"; }

# bulk.js PREFIX N: PUTs the keys PREFIX0000 .. PREFIX(N-1) (body "x"), 16 at
# a time, signed as sign.js signs; exits 0 only when every PUT answers 200.
cat >"$tmp/bulk.js" <<'EOF'
'use strict';
const http = require('http'), crypto = require('crypto');
const [prefix, count] = process.argv.slice(2);
const u = new URL(process.env.URL), ak = process.env.AK, sk = process.env.SK, b = process.env.B;
const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
const h = (d) => crypto.createHash('sha256').update(d).digest('hex');
const mac = (k, d) => crypto.createHmac('sha256', k).update(d).digest();
const enc = (s) => s.split('/').map((x) => encodeURIComponent(x).replace(/[!'()*]/g,
  (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase())).join('/');
function put(key) {
  const date = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '');
  const scope = `${date.slice(0, 8)}/us-east-1/s3/aws4_request`, path = `/${b}/${enc(key)}`;
  const payload = h('x');
  const creq = ['PUT', path, '', `host:${u.host}\nx-amz-content-sha256:${payload}\nx-amz-date:${date}\n`,
    'host;x-amz-content-sha256;x-amz-date', payload].join('\n');
  let k = mac('AWS4' + sk, date.slice(0, 8));
  for (const p of ['us-east-1', 's3', 'aws4_request']) k = mac(k, p);
  const sig = mac(k, `AWS4-HMAC-SHA256\n${date}\n${scope}\n${h(creq)}`).toString('hex');
  return new Promise((resolve) => {
    const r = http.request({ host: u.hostname, port: u.port, method: 'PUT', path, agent, headers: {
      'x-amz-date': date, 'x-amz-content-sha256': payload, 'content-length': 1,
      authorization: `AWS4-HMAC-SHA256 Credential=${ak}/${scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=${sig}`,
    } }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
    r.on('error', () => resolve(0));
    r.end('x');
  });
}
(async () => {
  let next = 0, bad = 0;
  const worker = async () => {
    while (next < Number(count)) {
      const st = await put(prefix + String(next++).padStart(4, '0'));
      if (st !== 200) bad++;
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  process.exit(bad ? 1 : 0);
})();
EOF
bulk() { URL=$URL B=$B AK=$AK SK=$SK node "$tmp/bulk.js" "$@"; }

clear_faults
curl -s -o /dev/null -X DELETE "$CTL/log"

# ---- SigV4 ---------------------------------------------------------------
printf 'hello front\n' >"$tmp/hello"
hash=$(sha256sum "$tmp/hello" | cut -d' ' -f1)
st=$(s3 -H "x-amz-content-sha256: $hash" -T "$tmp/hello" -H 'x-amz-meta-color: blue' "$URL/$B/$P/a.txt")
check "PUT signed by curl with the payload hash answers 200" [ "$st" = 200 ]
st=$(s3 "$URL/$B/$P/a.txt")
[ "$st" = 200 ] && cmp -s "$tmp/body" "$tmp/hello"
verdict "GET signed with UNSIGNED-PAYLOAD returns the object"
st=$(curl -s -o "$tmp/body" -w '%{http_code}' --aws-sigv4 aws:amz:us-east-1:s3 --user "$AK:wrong-secret" \
  -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$URL/$B/$P/a.txt")
[ "$st" = 403 ] && body_has "<Code>SignatureDoesNotMatch</Code>"
verdict "a wrong secret answers 403 SignatureDoesNotMatch"
body_has "<CanonicalRequest>GET" && ! body_has "wrong-secret" && ! body_has "$SK"
verdict "SignatureDoesNotMatch shows the canonical request, never the secret"
st=$(curl -s -o "$tmp/body" -w '%{http_code}' --aws-sigv4 aws:amz:us-east-1:s3 --user "AKIDUNKNOWN:$SK" \
  -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$URL/$B/$P/a.txt")
[ "$st" = 403 ] && body_has "<Code>InvalidAccessKeyId</Code>"
verdict "an unknown access key answers 403 InvalidAccessKeyId"
st=$(curl -s -o "$tmp/body" -w '%{http_code}' "$URL/$B/$P/a.txt")
[ "$st" = 403 ] && body_has "<Code>AccessDenied</Code>" && body_has "<RequestId>"
verdict "an unsigned request answers 403 AccessDenied"
st=$(curl -s -o "$tmp/body" -w '%{http_code}' --aws-sigv4 aws:amz:us-east-1:s3 --user "$AK:$SK" "$URL/$B/$P/a.txt")
[ "$st" = 400 ] && body_has "x-amz-content-sha256"
verdict "a request without x-amz-content-sha256 answers 400 InvalidRequest"
st=$(s3 -H "x-amz-content-sha256: $(printf x | sha256sum | cut -d' ' -f1)" -T "$tmp/hello" "$URL/$B/$P/bad-hash")
[ "$st" = 400 ] && body_has "<Code>XAmzContentSHA256Mismatch</Code>"
verdict "a payload hash that does not match the body answers 400 XAmzContentSHA256Mismatch"
st=$(curl -s -o "$tmp/body" -w '%{http_code}' --aws-sigv4 aws:amz:eu-west-1:s3 --user "$AK:$SK" \
  -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$URL/$B/$P/a.txt")
[ "$st" = 400 ] && body_has "<Code>AuthorizationHeaderMalformed</Code>"
verdict "a credential scope with the wrong region answers 400 AuthorizationHeaderMalformed"
st=$(s3 "$URL/$B?prefix=$P%2F&list-type=2")
check "an unsorted query string signed as sent by curl fails: S3 sorts the canonical query" [ "$st" = 403 ]
st=$(s3 "$URL/$B?list-type=2&prefix=$P%2F")
[ "$st" = 200 ] && body_has "<Key>$P/a.txt</Key>"
verdict "ListObjectsV2 with a sorted, encoded query answers 200"

st=$(sign GET "$URL/$B/$P/a.txt")
check "the independent signer is accepted" [ "$st" = 200 ]
st=$(sign GET "$URL/$B/$P/a.txt" --date "$(date -u -d '-20 min' +%Y%m%dT%H%M%SZ)")
[ "$st" = 403 ] && sbody_has "<Code>RequestTimeTooSkewed</Code>"
verdict "a request dated 20 minutes ago answers 403 RequestTimeTooSkewed"
st=$(sign GET "$URL/$B/$P/a.txt" --date "$(date -u -d '-10 min' +%Y%m%dT%H%M%SZ)")
check "a request dated 10 minutes ago is accepted" [ "$st" = 200 ]
st=$(sign GET "$URL/$B/$P/a.txt" --unsigned 'x-amz-request-payer: requester')
[ "$st" = 403 ] && sbody_has "<HeadersNotSigned>x-amz-request-payer</HeadersNotSigned>"
verdict "an x-amz-* header left out of SignedHeaders answers 403 AccessDenied (HeadersNotSigned)"
st=$(sign GET "$URL/$B/$P/a.txt" --presign 300)
[ "$st" = 200 ] && sbody_has "hello front"
verdict "a presigned GET URL is accepted"
st=$(sign GET "$URL/$B/$P/a.txt" --presign 60 --date "$(date -u -d '-2 min' +%Y%m%dT%H%M%SZ)")
[ "$st" = 403 ] && sbody_has "Request has expired"
verdict "an expired presigned URL answers 403 AccessDenied"

# ---- keys that need encoding; CopyObject ----------------------------------
k="$P/sp%20a%2Bb%3D%26%C3%A9%21%28%29"       # "sp a+b=&é!()"
printf 'odd\n' >"$tmp/odd"
st=$(s3 -T "$tmp/odd" "$URL/$B/$k")
check "PUT of a key with space + = & é ! ( ) encoded once answers 200" [ "$st" = 200 ]
st=$(s3 "$URL/$B?list-type=2&prefix=$P%2Fsp")
[ "$st" = 200 ] && body_has "<Key>$P/sp a+b=&amp;é!()</Key>"
verdict "the key is listed decoded"
st=$(s3 -X PUT -H "x-amz-copy-source: /$B/$k" "$URL/$B/$P/copy%3Dof")
[ "$st" = 200 ] && body_has "CopyObjectResult"
verdict "CopyObject from a key with %2B %3D %26 answers 200 (s3rver decodeURI repaired)"
st=$(s3 "$URL/$B/$P/copy%3Dof")
[ "$st" = 200 ] && cmp -s "$tmp/body" "$tmp/odd"
verdict "the copy has the source's content"

# ---- user metadata --------------------------------------------------------
v3k=$(head -c 3000 /dev/zero | tr '\0' v)
st=$(s3 -X PUT --data-binary x -H "x-amz-meta-big: $v3k" "$URL/$B/$P/big")
[ "$st" = 400 ] && body_has "<Code>MetadataTooLarge</Code>" && body_has "<MaxSizeAllowed>2048</MaxSizeAllowed>"
verdict "a 3 KB metadata PUT answers 400 MetadataTooLarge"
st=$(s3 -I "$URL/$B/$P/big")
check "the refused object was not created" [ "$st" = 404 ]
v2045=$(head -c 2045 /dev/zero | tr '\0' v)     # "abc" + 2045 = 2048
st=$(s3 -X PUT --data-binary x -H "x-amz-meta-abc: $v2045" "$URL/$B/$P/m2048")
check "metadata of exactly 2048 bytes (name without prefix + value) is accepted" [ "$st" = 200 ]
st=$(s3 -X PUT --data-binary x -H "x-amz-meta-abcd: $v2045" "$URL/$B/$P/m2049")
[ "$st" = 400 ] && body_has "<Size>2049</Size>"
verdict "metadata of 2049 bytes is refused"
st=$(s3 -X PUT --data-binary x -H "x-amz-meta-name: $(printf 'caf\xc3\xa9 \xe2\x82\xac')" -H 'x-amz-meta-plain: ascii only' "$URL/$B/$P/utf8")
check "PUT with a raw UTF-8 metadata value answers 200" [ "$st" = 200 ]
expect="=?UTF-8?B?$(printf 'caf\xc3\xa9 \xe2\x82\xac' | base64)?="
st=$(s3 "$URL/$B/$P/utf8")
[ "$st" = 200 ] && header_is x-amz-meta-name "$expect"
verdict "GET returns the UTF-8 value RFC 2047-encoded"
st=$(s3 -I "$URL/$B/$P/utf8")
[ "$st" = 200 ] && header_is x-amz-meta-name "$expect" && header_is x-amz-meta-plain "ascii only"
verdict "HEAD returns the UTF-8 value RFC 2047-encoded, ASCII values as they are"

# ---- pass-through: ranges, conditionals, deletes ----------------------------
st=$(s3 -r 0-4 "$URL/$B/$P/a.txt")
[ "$st" = 206 ] && [ "$(cat "$tmp/body")" = hello ]
verdict "a range GET answers 206 with the range"
etag=$(tr -d '\r' <"$tmp/headers" | sed -n 's/^[Ee][Tt]ag: //p')
st=$(s3 -H "If-None-Match: $etag" "$URL/$B/$P/a.txt")
check "If-None-Match with the ETag answers 304" [ "$st" = 304 ]
st=$(s3 -H 'If-Match: "0123"' "$URL/$B/$P/a.txt")
[ "$st" = 412 ] && body_has PreconditionFailed
verdict "If-Match with another ETag answers 412 PreconditionFailed"
st=$(s3 -H "If-Match: $etag" "$URL/$B/$P/a.txt")
check "If-Match with the ETag answers 200" [ "$st" = 200 ]
st=$(s3 -X PUT --data-binary y -H 'If-None-Match: *' "$URL/$B/$P/a.txt")
check "PUT If-None-Match: * on an existing key answers 412" [ "$st" = 412 ]
st=$(s3 -X PUT --data-binary y -H 'If-None-Match: *' "$URL/$B/$P/new-once")
check "PUT If-None-Match: * on a new key answers 200" [ "$st" = 200 ]
st=$(s3 -X PUT --data-binary y -H 'If-Match: "0123"' "$URL/$B/$P/missing")
check "PUT If-Match on a missing key answers 404 NoSuchKey" [ "$st" = 404 ]
st=$(s3 -X DELETE "$URL/$B/$P/new-once")
check "DELETE answers 204" [ "$st" = 204 ]
del="<Delete><Object><Key>$P/m2048</Key></Object><Object><Key>$P/utf8</Key></Object></Delete>"
md5=$(printf '%s' "$del" | openssl dgst -md5 -binary | base64)
dh=$(printf '%s' "$del" | sha256sum | cut -d' ' -f1)
st=$(s3 -X POST -H "x-amz-content-sha256: $dh" -H "Content-MD5: $md5" -H 'Content-Type: application/xml' \
  --data-binary "$del" "$URL/$B?delete=")
[ "$st" = 200 ] && body_has "<Deleted>"
verdict "DeleteObjects answers 200"

# ---- what s3rver answers unlike AWS: the front does it -----------------------
keys_in_body() { grep -o '<Key>[^<]*</Key>' "$tmp/body" | sed 's/<[^>]*>//g' | tr '\n' ' '; }
prefixes_in_body() { grep -o '<CommonPrefixes><Prefix>[^<]*' "$tmp/body" | sed 's/.*>//' | tr '\n' ' '; }
elem() { sed -n "s/.*<$1>\([^<]*\)<\/$1>.*/\1/p" "$tmp/body"; }
urlenc() { node -e 'process.stdout.write(encodeURIComponent(process.argv[1]))' "$1"; }
# post_delete FILE: DeleteObjects with the XML in FILE (hash and Content-MD5).
post_delete() {
  s3 -X POST -H "x-amz-content-sha256: $(sha256sum "$1" | cut -d' ' -f1)" \
    -H "Content-MD5: $(openssl dgst -md5 -binary "$1" | base64)" -H 'Content-Type: application/xml' \
    --data-binary @"$1" "$URL/$B?delete="
}

# listing order: UTF-8 byte order, whatever s3rver's directory walk does
o="$P/order"
for k in a0 %C3%A9 a/b a-c a; do s3 -X PUT --data-binary x "$URL/$B/$o/$k" >/dev/null; done
st=$(s3 "$URL/$B?list-type=2&prefix=$P%2Forder%2F")
[ "$st" = 200 ] && [ "$(keys_in_body)" = "$o/a $o/a-c $o/a/b $o/a0 $o/é " ]
verdict "ListObjectsV2 lists a, a-c, a/b, a0, é in UTF-8 byte order"
body_has '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' && body_has '<KeyCount>5</KeyCount>' &&
  body_has '<StorageClass>STANDARD</StorageClass>' && body_has '<ETag>&quot;9dd4e461268c8034f5c8564e155c67a6&quot;</ETag>'
verdict "the listing is AWS's XML: namespace, KeyCount, entity-encoded ETag, StorageClass"
st=$(s3 "$URL/$B?list-type=2&prefix=$P%2Forder%2F&start-after=$P%2Forder%2Fa-c")
[ "$st" = 200 ] && [ "$(keys_in_body)" = "$o/a/b $o/a0 $o/é " ]
verdict "start-after lists only the keys after it"
st=$(s3 "$URL/$B?delimiter=%2F&list-type=2&prefix=$P%2Forder%2F&start-after=$P%2Forder%2Fa%2Fb")
[ "$st" = 200 ] && [ "$(keys_in_body)" = "$o/a0 $o/é " ] && [ -z "$(prefixes_in_body)" ]
verdict "a start-after inside a common prefix leaves that prefix out"

# max-keys counts common prefixes: [a, a-c] [a/, a0] [é]
st=$(s3 "$URL/$B?delimiter=%2F&list-type=2&max-keys=2&prefix=$P%2Forder%2F")
t1=$(elem NextContinuationToken)
[ "$st" = 200 ] && [ "$(keys_in_body)" = "$o/a $o/a-c " ] && [ "$(elem KeyCount)" = 2 ] &&
  [ "$(elem IsTruncated)" = true ] && [ -n "$t1" ]
verdict "max-keys=2 with delimiter /: first page a, a-c, truncated, with a continuation token"
st=$(s3 "$URL/$B?continuation-token=$(urlenc "$t1")&delimiter=%2F&list-type=2&max-keys=2&prefix=$P%2Forder%2F")
t2=$(elem NextContinuationToken)
[ "$st" = 200 ] && [ "$(prefixes_in_body)" = "$o/a/ " ] && [ "$(keys_in_body)" = "$o/a0 " ] &&
  [ "$(elem KeyCount)" = 2 ] && [ "$(elem IsTruncated)" = true ] && [ -n "$t2" ]
verdict "second page: the common prefix a/ counts toward max-keys, then a0"
st=$(s3 "$URL/$B?continuation-token=$(urlenc "$t2")&delimiter=%2F&list-type=2&max-keys=2&prefix=$P%2Forder%2F")
[ "$st" = 200 ] && [ "$(keys_in_body)" = "$o/é " ] && [ "$(elem KeyCount)" = 1 ] &&
  [ "$(elem IsTruncated)" = false ] && ! body_has NextContinuationToken
verdict "last page: é, not truncated, no token"
st=$(s3 "$URL/$B?continuation-token=bm90IG91cnM%21&list-type=2")
[ "$st" = 400 ] && body_has "<Code>InvalidArgument</Code>"
verdict "a continuation token that is not ours answers 400 InvalidArgument"
st=$(s3 "$URL/$B?list-type=2&max-keys=0&prefix=$P%2Forder%2F")
[ "$st" = 200 ] && [ "$(elem KeyCount)" = 0 ] && [ "$(elem IsTruncated)" = false ]
verdict "max-keys=0 answers no keys, not truncated"

# a delimiter of several characters
d="$P/dd"
for k in x--1 x--2 y-z z--w--v; do s3 -X PUT --data-binary x "$URL/$B/$d/$k" >/dev/null; done
st=$(s3 "$URL/$B?delimiter=--&list-type=2&prefix=$P%2Fdd%2F")
[ "$st" = 200 ] && [ "$(keys_in_body)" = "$d/y-z " ] && [ "$(prefixes_in_body)" = "$d/x-- $d/z-- " ] &&
  [ "$(elem Delimiter)" = -- ] && [ "$(elem KeyCount)" = 3 ]
verdict "delimiter -- rolls up x--1, x--2 into x-- and z--w--v into z--"

# encoding-type=url
s3 -X PUT --data-binary x "$URL/$B/$P/enc/sp%20a%2Bb%26" >/dev/null
st=$(s3 "$URL/$B?encoding-type=url&list-type=2&prefix=$P%2Fenc%2F")
[ "$st" = 200 ] && [ "$(keys_in_body)" = "$P/enc/sp%20a%2Bb%26 " ] && body_has "<EncodingType>url</EncodingType>" &&
  [ "$(elem Prefix)" = "$P/enc/" ]
verdict "encoding-type=url answers keys and prefix URL-encoded ('/' kept)"
st=$(s3 "$URL/$B?list-type=2&prefix=$P%2Fenc%2F")
[ "$st" = 200 ] && [ "$(keys_in_body)" = "$P/enc/sp a+b&amp; " ]
verdict "without encoding-type the key is entity-encoded"
st=$(s3 "$URL/$B?marker=$P%2Forder%2Fa&max-keys=2&prefix=$P%2Forder%2F")
[ "$st" = 200 ] && [ "$(keys_in_body)" = "$o/a-c $o/a/b " ] && [ "$(elem IsTruncated)" = true ] &&
  body_has "<Marker>$o/a</Marker>" && body_has "<Owner>"
verdict "ListObjects (V1) honours marker and max-keys in byte order"

# DeleteObjects: one key at a time upstream, so s3rver's clean-up cannot race
bulk "$P/bulk/" 1500
verdict "1500 keys PUT 16 at a time"
{ printf '<?xml version="1.0" encoding="UTF-8"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
  for i in $(seq -w 0000 0997); do printf '<Object><Key>%s</Key></Object>' "$P/bulk/$i"; done
  printf '<Object><Key>%s</Key></Object><Object><Key>%s</Key></Object></Delete>' "$P/bulk/absent-1" "$P/never/was"
} >"$tmp/del1.xml"
st=$(post_delete "$tmp/del1.xml")
[ "$st" = 200 ] && [ "$(grep -o '<Deleted>' "$tmp/body" | wc -l)" = 1000 ] && ! body_has '<Error>' &&
  body_has "<Deleted><Key>$P/never/was</Key></Deleted>"
verdict "DeleteObjects of 998 keys and 2 absent ones: 1000 Deleted, no Error"
{ printf '<Delete><Quiet>true</Quiet>'
  for i in $(seq -w 0998 1499); do printf '<Object><Key>%s</Key></Object>' "$P/bulk/$i"; done
  printf '</Delete>'
} >"$tmp/del2.xml"
st=$(post_delete "$tmp/del2.xml")
[ "$st" = 200 ] && body_has '<DeleteResult' && ! body_has '<Deleted>' && ! body_has '<Error>'
verdict "DeleteObjects of the other 502 in Quiet mode answers an empty DeleteResult"
st=$(s3 "$URL/$B?list-type=2&prefix=$P%2Fbulk%2F")
[ "$st" = 200 ] && [ "$(elem KeyCount)" = 0 ]
verdict "all 1500 keys are gone"
{ printf '<Delete>'; for i in $(seq 0 1000); do printf '<Object><Key>k%s</Key></Object>' "$i"; done; printf '</Delete>'; } >"$tmp/del3.xml"
st=$(post_delete "$tmp/del3.xml")
[ "$st" = 400 ] && body_has "<Code>MalformedXML</Code>"
verdict "DeleteObjects of 1001 keys answers 400 MalformedXML"
printf '<Delete><Object><Key>%s</Key></Object></Delete>' "$P/a.txt" >"$tmp/del4.xml"
st=$(s3 -X POST -H "x-amz-content-sha256: $(sha256sum "$tmp/del4.xml" | cut -d' ' -f1)" \
  --data-binary @"$tmp/del4.xml" "$URL/$B?delete=")
[ "$st" = 400 ] && body_has "Content-MD5"
verdict "DeleteObjects without Content-MD5 answers 400 InvalidRequest"
st=$(s3 -X PUT -H "Content-MD5: $(printf other | openssl dgst -md5 -binary | base64)" --data-binary body "$URL/$B/$P/md5")
[ "$st" = 400 ] && body_has "<Code>BadDigest</Code>"
verdict "a PUT whose Content-MD5 does not match its body answers 400 BadDigest"

# ranges, as AWS cuts them
st=$(s3 -r 0-0 "$URL/$B/$P/a.txt")
[ "$st" = 206 ] && [ "$(cat "$tmp/body")" = h ] && header_is Content-Range "bytes 0-0/12" && header_is Content-Length 1
verdict "bytes=0-0 answers 206 with exactly the first byte"
st=$(s3 -r -6 "$URL/$B/$P/a.txt")
[ "$st" = 206 ] && [ "$(cat "$tmp/body")" = front ] && header_is Content-Range "bytes 6-11/12"
verdict "bytes=-6 answers the last 6 bytes"
st=$(s3 -r 10-99 "$URL/$B/$P/a.txt")
[ "$st" = 206 ] && header_is Content-Range "bytes 10-11/12" && header_is Content-Length 2
verdict "a range past the end is clamped"
st=$(s3 -r 12- "$URL/$B/$P/a.txt")
[ "$st" = 416 ] && body_has "<Code>InvalidRange</Code>" && header_is Content-Range 'bytes \*/12'
verdict "a range starting at the end answers 416 InvalidRange"
st=$(s3 -I -r 0-0 "$URL/$B/$P/a.txt")
[ "$st" = 206 ] && header_is Content-Length 1
verdict "HEAD with bytes=0-0 answers 206 Content-Length 1"

# keys stored verbatim: empty, '.' and '..' segments
v="$P/v"
s3 -X PUT --data-binary two-slashes "$URL/$B/$v/a//b" >/dev/null
s3 --path-as-is -X PUT --data-binary dot "$URL/$B/$v/a/./b" >/dev/null
s3 --path-as-is -X PUT --data-binary dot-dot "$URL/$B/$v/a/../b" >/dev/null
s3 --path-as-is -X PUT --data-binary slash-end "$URL/$B/$v/a/./" >/dev/null
r=""
for k in a//b a/./b a/../b a/./; do s3 --path-as-is "$URL/$B/$v/$k" >/dev/null; r="$r$(cat "$tmp/body") "; done
check "a//b, a/./b, a/../b, a/./ read back what was written to each" [ "$r" = "two-slashes dot dot-dot slash-end " ]
st=$(s3 "$URL/$B?list-type=2&prefix=$P%2Fv%2F")
[ "$st" = 200 ] && [ "$(keys_in_body)" = "$v/a/../b $v/a/./ $v/a/./b $v/a//b " ]
verdict "they are listed verbatim, in byte order"
st=$(s3 "$URL/$B?delimiter=%2F&list-type=2&prefix=$P%2Fv%2Fa%2F")
[ "$st" = 200 ] && [ "$(prefixes_in_body)" = "$v/a/../ $v/a/./ $v/a// " ] && [ -z "$(keys_in_body)" ]
verdict "delimiter / sees the segments '..', '.' and '' as prefixes"
st=$(s3 --path-as-is -X PUT -H "x-amz-copy-source: /$B/$v/a//b" "$URL/$B/$v/a/../c")
st2=$(s3 --path-as-is "$URL/$B/$v/a/../c")
[ "$st" = 200 ] && [ "$st2" = 200 ] && [ "$(cat "$tmp/body")" = two-slashes ]
verdict "CopyObject from a//b to a/../c copies"
st=$(s3 "$URL/$B/$v/a//nothing")
[ "$st" = 404 ] && body_has "<Key>$v/a//nothing</Key>"
verdict "NoSuchKey names the key as the client sent it"
curl -s "$CTL/log" | node -e '
  const log = JSON.parse(require("fs").readFileSync(0, "utf8"));
  const want = process.argv.slice(1);
  process.exit(want.every((k) => log.some((e) => e.command === "PutObject" && e.key === k)) ? 0 : 1);' \
  "$v/a//b" "$v/a/./b" "$v/a/../b"
verdict "the log names the real keys"

# ---- faults -----------------------------------------------------------------
clear_faults
st=$(ctl_post '{"status":503,"command":"GetObject","key_prefix":"'"$P/a"'","nth":2}')
check "POST /__control/faults accepts a rule" [ "$st" = 200 ]
s1=$(s3 "$URL/$B/$P/a.txt"); s2=$(s3 "$URL/$B/$P/a.txt"); b2=$(cat "$tmp/body"); s3x=$(s3 "$URL/$B/$P/a.txt")
[ "$s1/$s2/$s3x" = 200/503/200 ] && [[ $b2 == *"<Code>SlowDown</Code>"* ]]
verdict "an nth:2 rule fails only the 2nd matching request, with SlowDown"
clear_faults
ctl_post '{"status":500,"method":"HEAD","count":2}' >/dev/null
r=$(for _ in 1 2 3; do s3 -I "$URL/$B/$P/a.txt"; echo -n " "; done)
check "a count:2 rule fails the next 2 matching requests with 500" [ "$r" = "500 500 200 " ]
clear_faults
ctl_post '{"reset":true,"command":"GetObject"}' >/dev/null
curl -s -o /dev/null --aws-sigv4 aws:amz:us-east-1:s3 --user "$AK:$SK" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$URL/$B/$P/a.txt"
rc=$?
[ $rc = 52 ] || [ $rc = 56 ]
verdict "a reset rule closes the connection without an answer (curl exit 52 or 56)"
clear_faults
ctl_post '{"status":500,"after_forward":true,"command":"PutObject","count":1}' >/dev/null
st=$(s3 -X PUT --data-binary lost "$URL/$B/$P/lost-answer")
st2=$(s3 "$URL/$B/$P/lost-answer")
[ "$st" = 500 ] && [ "$st2" = 200 ] && [ "$(cat "$tmp/body")" = lost ]
verdict "after_forward: the PUT answers 500 yet the object was written"
clear_faults
ctl_post '{"delay_ms":400,"command":"HeadObject","count":1}' >/dev/null
t0=$(date +%s%N); st=$(s3 -I "$URL/$B/$P/a.txt"); t1=$(date +%s%N)
[ "$st" = 200 ] && [ $(( (t1 - t0) / 1000000 )) -ge 400 ]
verdict "a delay_ms:400 rule delays then forwards"
pattern() {
  clear_faults
  ctl_post '{"status":503,"command":"HeadObject","rate":0.5,"seed":7}' >/dev/null
  for _ in $(seq 1 16); do s3 -I "$URL/$B/$P/a.txt" | cut -c1; done | tr -d '\n'
}
p1=$(pattern); p2=$(pattern)
[ "$p1" = "$p2" ] && [[ $p1 == *5* ]] && [[ $p1 == *2* ]]
verdict "a rate:0.5 rule with a seed fires repeatably ($p1)"
clear_faults
st=$(ctl_post '{"statuss":503}')
check "a rule with an unknown field is refused with 400" [ "$st" = 400 ]
st=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$CTL/faults")
check "DELETE /__control/faults answers 200" [ "$st" = 200 ]

# ---- the request log ----------------------------------------------------------
curl -s "$CTL/log" >"$tmp/log.json"
cmds=$(node -e '
  const log = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  console.log([...new Set(log.map((e) => e.command))].sort().join(" "));' "$tmp/log.json")
for c in PutObject GetObject HeadObject DeleteObject DeleteObjects ListObjectsV2 CopyObject; do
  [[ " $cmds " == *" $c "* ]]
verdict "the log lists $c"
done
check "log entries carry method, path, query, command, key, status, fault" node -e '
  const log = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const need = ["method", "path", "query", "command", "key", "status", "fault"];
  const e = log.find((x) => x.command === "DeleteObjects");
  process.exit(log.every((x) => need.every((k) => k in x)) && e && e.keys.length === 2 &&
    log.some((x) => x.fault === "reset" && x.status === 0) ? 0 : 1);' "$tmp/log.json"
[ "$(grep -c "" "$S3DB_TEST_FRONT_LOG")" -ge "$(node -e "console.log(JSON.parse(require(\"fs\").readFileSync(process.argv[1])).length)" "$tmp/log.json")" ]
verdict "the log file has one JSON line per request"
curl -s -o /dev/null -X DELETE "$CTL/log"
check "DELETE /__control/log empties the log" [ "$(curl -s "$CTL/log")" = "[]" ]

echo "$pass passed, $fail failed"
[ $fail = 0 ]
