#!/usr/bin/env node
/*
 * s3front.js — a strict front that the s3dbfs tests put before s3rver.
 *
 * s3rver is a good enough object store but a lax S3: it verifies no SigV4
 * signature, has no user-metadata limit and returns non-ASCII metadata bytes
 * raw.  This front listens on 127.0.0.1:PORT, checks every request the way
 * Amazon S3 does, forwards the good ones to s3rver (127.0.0.1:UPSTREAM) and
 * passes the answer back, repairing where s3rver answers unlike S3 (see
 * below).  It also logs every request and injects faults on demand, so
 * tests can observe what the library sent and how it copes with a failing
 * S3.
 *
 * Node core modules only (http, crypto, fs, stream); no npm dependency.
 *
 * Request path, in order:
 *   1. /__control/...           the control API (never forwarded, never logged)
 *   2. read the whole body      (the payload hash must be checked before
 *                                anything reaches s3rver)
 *   3. authenticate             SigV4, Authorization header or presigned query
 *   4. request checks           user-metadata limit (PUT/POST carrying
 *                                x-amz-meta-*), Content-MD5 (BadDigest), keys
 *                                longer than 1024 bytes (KeyTooLongError)
 *   5. preconditions            If-Match / If-Unmodified-Since on GET/HEAD and
 *                                conditional PutObject, which s3rver ignores
 *                                (writes to one key are serialized here)
 *   6. fault rules              may delay, answer an error, reset the socket,
 *                                or forward first and then lose the answer
 *   7. forward to s3rver        Authorization and presign parameters stripped
 *                                (s3rver accepts unsigned requests); the key
 *                                mapped to its upstream form (see "Key
 *                                mapping"); path and query in canonical
 *                                encoding.  ListObjects(V2), DeleteObjects
 *                                and ranged GET/HEAD are carried out by the
 *                                front itself with plain requests to s3rver
 *                                (see below), as s3rver gets them wrong.
 *   8. answer                   x-amz-meta-* values with non-ASCII bytes are
 *                                RFC 2047-encoded as =?UTF-8?B?...?=; upstream
 *                                keys in error and multipart answers mapped
 *                                back; all else passed on unchanged (204,
 *                                304, 412)
 *   9. log                      one JSON line per request (--log FILE) and an
 *                                in-memory copy for GET /__control/log; keys
 *                                are always the client's (real) keys
 *
 * Key mapping.  AWS stores a key verbatim; s3rver stores key K as the file
 * BUCKET/<K's directories>/<K's last segment>._S3rver_object, so a key with
 * an empty segment ("a//b") is not routed (404), "." and ".." segments are
 * resolved away (or out of the bucket), a segment longer than ~230 bytes
 * fails (ENAMETOOLONG), and its listing walks directories in an order that
 * is not key order.  The front therefore stores real key K under the
 * upstream key U = encodeKey(K), built code point by code point ("units"):
 *   - U+0000..U+0030 (controls, space, !"#$%&'()*+,-./ and '0')
 *                             -> '0' + two uppercase hex digits ("02D")
 *   - U+0031..U+D7FE          -> itself
 *   - U+D7FF and above        -> U+D7FF + the UTF-8 bytes in uppercase hex
 *   - after the unit of '/' ("02F"), and whenever the current upstream
 *     component has reached 200 bytes, a '/' is inserted: directories
 *     where the key has them, and long segments cut into several.
 * decodeKey(U) drops every '/' and reverses the units.  Examples: "a//b"
 * -> "a02F/02F/b", "a/./b" -> "a02F/02E02F/b", "a/../b" ->
 * "a02F/02E02E02F/b", "x/" -> "x02F/", "a-c" -> "a02Dc", "k00" ->
 * "k030030", "café" -> "café".
 * Properties the front relies on (so do not change one part alone):
 *   - injective, prefix-stable (K starts with P => U(K) starts with U(P):
 *     each choice depends only on what comes before) and order-preserving
 *     (K1 < K2 in UTF-8 byte order <=> U(K1) < U(K2) in JS string order:
 *     the units are a prefix-free code that keeps order, '/' goes in at
 *     places fixed by what comes before);
 *   - every upstream path component holds only code points from '0' to
 *     U+D7FF (so no '.': it never collides with s3rver's "._S3rver_*"
 *     files, is never "." or ".."), is non-empty (the empty leaf of "x/"
 *     aside, which s3rver handles) and at most 210 bytes; a directory ends
 *     with the unit "02F" or holds 200 bytes or more, a file stem neither,
 *     so no name is both a file stem and a directory;
 *   - hence s3rver's walk (readdir sorted by bytes, depth first) visits
 *     upstream keys in exactly JS string order, i.e. in real key order,
 *     and its start-after paging is lossless (each page is checked to be
 *     strictly increasing all the same).
 * Keys seen directly on s3rver (S3DB_TEST_UPSTREAM_URL) are upstream keys.
 * PostObject (browser form upload: the key is inside the form) is refused
 * with 501 NotImplemented.
 *
 * ListObjectsV2 and ListObjects (V1) are answered by the front, from
 * s3rver's listing of the upstream prefix U(prefix) without delimiter,
 * which is in real key order: it starts after U(start-after / token /
 * marker) (with a delimiter, past the common prefix that one lies in, if
 * any), reads s3rver's pages (start-after = the last upstream key; no
 * more keys than the page can use), decodes the keys, rolls up common
 * prefixes (any delimiter string, several characters allowed) and jumps
 * past each with start-after = U(common prefix) + U+FFFF, and stops after
 * max-keys items (default and maximum 1000; common prefixes count) plus
 * one to know whether the answer is truncated.  A listing page thus costs
 * about one s3rver page, however many keys the prefix holds.  An item (key
 * or common prefix) is listed only when it sorts after start-after / the
 * token / the marker, in UTF-8 byte order.  The answer is AWS's XML
 * (namespace http://s3.amazonaws.com/doc/2006-03-01/; Key, LastModified,
 * ETag, Size, StorageClass; Owner for V1 and fetch-owner=true; KeyCount,
 * IsTruncated, NextContinuationToken or NextMarker; keys entity-encoded,
 * or with encoding-type=url encoded with S3's UriEncode, '/' kept: Key,
 * Prefix, Delimiter, StartAfter, Marker, NextMarker, common prefixes).
 * Continuation tokens are base64 of the last item returned (key or common
 * prefix).  Nothing is cached between requests.
 *
 * DeleteObjects is answered by the front: s3rver deletes a batch in
 * parallel and its directory clean-up races itself (500, ENOENT).  The
 * front parses <Delete> (at most 1000 <Object>, else MalformedXML; Content-MD5
 * or an x-amz-checksum-* header required, as AWS), deletes the keys one by
 * one with DeleteObject requests to s3rver (under the keys' write locks,
 * 25 keys to a turn of the exclusive lock described below), and answers
 * <DeleteResult> with <Deleted> (omitted in Quiet mode) and <Error>
 * elements.  An absent key counts as deleted, as on AWS.
 *
 * s3rver's races in general: its DeleteObject removes emptied directories
 * while a concurrent PUT may be writing into them, another delete removing
 * them, or a listing walking them (ENOENT, 500); a PUT rewrites the object
 * and metadata files in place, so a concurrent GET, HEAD or listing reads
 * them half written (500 "Unexpected end of JSON input", or a short body).
 * AWS has none of this.  The front therefore sends s3rver its GET and HEAD
 * requests shared and every other request exclusive, under one FIFO
 * readers-writer lock held until s3rver's whole answer has been read (the
 * front buffers it; objects in tests are small).
 *
 * Range (GET and HEAD): s3rver reads "bytes=0-0" as "bytes=0-" and knows no
 * suffix ranges.  The front asks s3rver for the whole object and cuts the
 * range out of the stream: "bytes=A-B", "bytes=A-" and "bytes=-N" answer
 * 206 with Content-Range and exactly those bytes (B clamped to the end); a
 * range that starts at or past the end (or any range of an empty object,
 * or "bytes=-0") answers 416 InvalidRange with RangeRequested and
 * ActualObjectSize; an unparsable or multi-range header is ignored (200
 * with the whole object), as RFC 7233 and S3 do.
 *
 * Content-MD5 on PUT/POST is checked against the body received (400
 * InvalidDigest when it is not 16 bytes of base64, 400 BadDigest when it
 * does not match), which s3rver does not do.  Object keys longer than 1024
 * bytes of UTF-8 answer 400 KeyTooLongError.
 *
 * Log entry: {seq, time, method, path (raw, without query), query (raw),
 * command (AWS operation name: PutObject, GetObject, HeadObject,
 * DeleteObject, DeleteObjects, ListObjectsV2, CopyObject, ...), bucket,
 * key (object key; for List* the prefix parameter), status (sent to the
 * client; 0 when the socket was reset), fault (null or "status:503",
 * "reset", "delay:200", "after_forward+status:500", ...), fault_rule (rule
 * id), error (AWS error code when the front answered itself), access_key,
 * upstream_status, bytes_in, metadata_bytes (PUT/POST), keys (DeleteObjects),
 * upstream_requests (how many requests to s3rver the front made, HEADs for
 * preconditions included), duration_ms}.  upstream_status is the status of
 * the request forwarded; for ListObjects(V2) and DeleteObjects, which take
 * several, the highest among them.
 *
 * Control API (same port; bucket names cannot contain "__"; no auth):
 *   GET    /__control/health      {ok, port, upstream, region, rules, log_entries}
 *   POST   /__control/faults      rule or [rules] -> {ok, id, ids}; 400 {ok:false, error}
 *   GET    /__control/faults      [{id, matched, fired, rule}]
 *   DELETE /__control/faults      clear all rules -> {ok, cleared}
 *   DELETE /__control/faults/ID   clear one rule
 *   GET    /__control/log         JSON array of entries since the last clear
 *   DELETE /__control/log         clear the in-memory log (the file keeps all)
 *
 * SigV4 as S3 checks it (AWS "Signature Calculations for the Authorization
 * Header" and "Authenticating Requests: Using Query Parameters"):
 *   - canonical URI: the path's percent-escapes decoded to bytes and
 *     re-encoded once with S3's UriEncode (unreserved A-Za-z0-9-_.~ kept,
 *     '/' kept, every other byte %XX uppercase).  No dot-segment removal, no
 *     slash merging, no double encoding.  A client that encodes each segment
 *     once, as S3 asks, signs exactly the path it sends.
 *   - canonical query: each name and value decoded ('+' is a space) and
 *     re-encoded with UriEncode ('/' encoded too), sorted by name then value,
 *     "name=value" joined by '&' ("delete" becomes "delete=").
 *   - canonical headers: the SignedHeaders list as given; values of repeated
 *     headers joined by ',', each trimmed with inner whitespace runs folded.
 *     Header bytes are used as received (latin1 round trip), so raw UTF-8
 *     metadata is signed byte for byte.
 *   - x-amz-content-sha256 is required with header auth; unless it is
 *     UNSIGNED-PAYLOAD it must be the hex SHA-256 of the body received
 *     (XAmzContentSHA256Mismatch).  STREAMING-* payloads are not supported.
 *   - host must be signed; every x-amz-* header present must be signed
 *     (AccessDenied, HeadersNotSigned), as S3 requires.
 *   - credential scope DATE/REGION/s3/aws4_request; DATE equal to the date
 *     of x-amz-date; x-amz-date within 15 minutes of now
 *     (RequestTimeTooSkewed).  Presigned URLs: X-Amz-Expires <= 604800 and
 *     not expired.
 *   - errors: no credentials 403 AccessDenied; unknown key id 403
 *     InvalidAccessKeyId; bad signature 403 SignatureDoesNotMatch, whose
 *     body carries StringToSign and CanonicalRequest as S3's does (no
 *     secret is ever printed).
 * Only path-style addressing (http://127.0.0.1:PORT/BUCKET/KEY) is handled.
 *
 * User-metadata limit: AWS documents "Within the PUT request header, the
 * user-defined metadata is limited to 2 KB in size.  The size of
 * user-defined metadata is measured by taking the sum of the number of bytes
 * in the UTF-8 encoding of each key and value."  We count, over every
 * x-amz-meta-* header of a PUT or POST (PutObject, CopyObject with REPLACE,
 * CreateMultipartUpload), the bytes of the name WITHOUT the "x-amz-meta-"
 * prefix plus the bytes of the value as sent (an RFC 2047 word counts as
 * its ASCII text), and refuse a total above 2048 bytes (2 KB = 2048: a total
 * of exactly 2048 passes) with 400 MetadataTooLarge, <Size> and
 * <MaxSizeAllowed>.  --metadata-limit changes the number.
 *
 * Non-ASCII metadata: AWS encodes values with non-US-ASCII characters "as
 * per RFC 2047 to make them mail-safe before returning" and presents
 * ASCII-only values as they are.  We answer such a value as one encoded word
 * =?UTF-8?B?<base64 of the stored bytes>?= on every response (GET, HEAD).
 * Whether AWS splits very long values into several words is undocumented;
 * we never split.  Values are stored by s3rver as sent.
 *
 * s3rver quirk repaired here: CopyObject runs decodeURI() on
 * x-amz-copy-source, so keys with %2B, %3D, %26 ... were not found.  The
 * front decodes the source fully, maps its key to the upstream key and
 * forwards encodeURI() of it, which decodeURI() turns back into the exact
 * upstream key.  ?versionId is dropped (s3rver has no versions).
 *
 * Faults (POST /__control/faults, JSON object or array of objects):
 *   status       answer this HTTP status with an AWS XML error (503
 *                SlowDown, 500 InternalError, ...; code/message override)
 *   reset        true: destroy the socket without answering
 *   delay_ms     wait this long first (then forward, unless status/reset)
 *   after_forward true: forward to s3rver, let it take effect, then answer
 *                with status or reset (a lost response)
 *   command, method, bucket (string or array), key_prefix: what matches
 *   nth          only the Nth matching request (1-based) fires
 *   count        at most N firings (the next N matching requests)
 *   rate, seed   each matching request fires with probability rate, drawn
 *                from a PRNG seeded with seed (default 1): repeatable
 * A rule without nth/count/rate fires on every matching request until
 * deleted.  Rules are tried in the order they were added; every matching
 * rule counts the request, the first that fires is applied.  Faults apply
 * only to requests that passed authentication, the metadata check and the
 * preconditions.
 *
 * Usage: node s3front.js --upstream PORT|URL --keys AKID:SECRET [--keys ..]
 *          [--keys-env VAR (VAR holds AKID:SECRET[,AKID:SECRET...]; keeps
 *           secrets out of ps)]
 *          [--port N (0: any)] [--port-file F] [--host 127.0.0.1]
 *          [--log FILE] [--region us-east-1] [--metadata-limit 2048]
 *          [--max-skew-minutes 15] [--quiet]
 */
'use strict';

const http = require('http');
const crypto = require('crypto');
const fs = require('fs');
const { PassThrough } = require('stream');

/* ---- configuration --------------------------------------------------- */

function usage(msg) {
	if (msg)
		process.stderr.write(`s3front: ${msg}\n`);
	process.stderr.write('usage: s3front.js --upstream PORT|URL (--keys AKID:SECRET | ' +
		'--keys-env VAR)... [--port N] [--port-file F] [--host H] [--log FILE] ' +
		'[--region R] [--metadata-limit N] [--max-skew-minutes N] [--quiet]\n');
	process.exit(2);
}

/* Parses argv into a config object; exits with status 2 on bad usage. */
function parseArgs(argv) {
	const cfg = {
		host: '127.0.0.1', port: 0, portFile: null, upstream: null,
		keys: new Map(), log: null, region: 'us-east-1',
		metadataLimit: 2048, maxSkewMs: 15 * 60 * 1000, quiet: false,
		maxLogEntries: 200000,
	};
	for (let i = 0; i < argv.length; i++) {
		const a = argv[i];
		const val = () => {
			if (i + 1 >= argv.length)
				usage(`${a} needs a value`);
			return argv[++i];
		};
		switch (a) {
		case '--host': cfg.host = val(); break;
		case '--port': cfg.port = Number(val()); break;
		case '--port-file': cfg.portFile = val(); break;
		case '--upstream': {
			const v = val();
			cfg.upstream = /^\d+$/.test(v) ? `http://127.0.0.1:${v}` : v.replace(/\/+$/, '');
			break;
		}
		case '--keys': {
			const v = val();
			const colon = v.indexOf(':');
			if (colon <= 0 || colon === v.length - 1)
				usage('--keys wants ACCESS_KEY_ID:SECRET');
			cfg.keys.set(v.slice(0, colon), v.slice(colon + 1));
			break;
		}
		case '--keys-env': {
			const name = val();
			const v = process.env[name];
			if (!v)
				usage(`--keys-env: ${name} is not set`);
			for (const pair of v.split(/[\n,]/).map((x) => x.trim()).filter(Boolean)) {
				const colon = pair.indexOf(':');
				if (colon <= 0 || colon === pair.length - 1)
					usage(`--keys-env: ${name} wants ACCESS_KEY_ID:SECRET[,...]`);
				cfg.keys.set(pair.slice(0, colon), pair.slice(colon + 1));
			}
			break;
		}
		case '--log': cfg.log = val(); break;
		case '--region': cfg.region = val(); break;
		case '--metadata-limit': cfg.metadataLimit = Number(val()); break;
		case '--max-skew-minutes': cfg.maxSkewMs = Number(val()) * 60000; break;
		case '--quiet': cfg.quiet = true; break;
		case '-h': case '--help': usage(); break;
		default: usage(`unknown argument ${a}`);
		}
	}
	if (!cfg.upstream)
		usage('--upstream is required');
	if (cfg.keys.size === 0)
		usage('at least one --keys or --keys-env is required');
	const m = /^http:\/\/([^:/]+):(\d+)$/.exec(cfg.upstream);
	if (!m)
		usage('--upstream must be PORT or http://HOST:PORT');
	cfg.upstreamHost = m[1];
	cfg.upstreamPort = Number(m[2]);
	return cfg;
}

const cfg = parseArgs(process.argv.slice(2));
/* s3rver (Node's http server) closes idle connections after 5 s; dropping
 * ours after 4 s, and retrying once what failed on a reused socket, keeps
 * that race from turning into spurious errors. */
const upstreamAgent = new http.Agent({ keepAlive: true, maxSockets: 64, timeout: 4000 });
const logFd = cfg.log ? fs.openSync(cfg.log, 'a') : null;

/* ---- small helpers ---------------------------------------------------- */

const sha256hex = (buf) => crypto.createHash('sha256').update(buf).digest('hex');
const hmac = (key, data) => crypto.createHmac('sha256', key).update(data).digest();
const latin1 = (s) => Buffer.from(s, 'latin1');

function xmlEscape(s) {
	return String(s).replace(/[&<>"']/g, (c) => ({
		'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', '\'': '&apos;',
	}[c]));
}

function requestId() {
	return crypto.randomBytes(8).toString('hex').toUpperCase();
}

/* Percent-decodes a latin1 string into bytes; '+' becomes a space when
 * plusIsSpace.  Malformed escapes are kept literally. */
function pctDecode(s, plusIsSpace) {
	const out = [];
	for (let i = 0; i < s.length; i++) {
		const c = s.charCodeAt(i);
		if (c === 0x25 && i + 2 < s.length && /^[0-9A-Fa-f]{2}$/.test(s.substr(i + 1, 2))) {
			out.push(parseInt(s.substr(i + 1, 2), 16));
			i += 2;
		} else if (c === 0x2b && plusIsSpace) {
			out.push(0x20);
		} else {
			out.push(c & 0xff);
		}
	}
	return Buffer.from(out);
}

/* S3's UriEncode of a byte buffer: unreserved bytes kept, '/' kept unless
 * encodeSlash, every other byte %XX with uppercase hex. */
function uriEncode(buf, encodeSlash) {
	let out = '';
	for (const b of buf) {
		if ((b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) ||
		    b === 0x2d || b === 0x5f || b === 0x2e || b === 0x7e || (b === 0x2f && !encodeSlash))
			out += String.fromCharCode(b);
		else
			out += '%' + (b < 16 ? '0' : '') + b.toString(16).toUpperCase();
	}
	return out;
}

/* Splits a raw query string into [{name, value, rawName}] with names and
 * values decoded to UTF-8 strings and their canonical (UriEncoded) forms. */
function parseQuery(raw) {
	const params = [];
	if (!raw)
		return params;
	for (const part of raw.split('&')) {
		if (part === '')
			continue;
		const eq = part.indexOf('=');
		const rn = eq < 0 ? part : part.slice(0, eq);
		const rv = eq < 0 ? '' : part.slice(eq + 1);
		const nb = pctDecode(rn, true), vb = pctDecode(rv, true);
		params.push({
			raw: part,
			name: nb.toString('utf8'), value: vb.toString('utf8'),
			cname: uriEncode(nb, true), cvalue: uriEncode(vb, true),
		});
	}
	return params;
}

function canonicalQuery(params, skip) {
	return params.filter((p) => !skip || !skip(p.name))
		.map((p) => [p.cname, p.cvalue])
		.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
		.map(([n, v]) => `${n}=${v}`).join('&');
}

/* Header map from rawHeaders: lowercased name -> array of raw (latin1)
 * values, in the order received. */
function headerMap(rawHeaders) {
	const m = new Map();
	for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
		const n = rawHeaders[i].toLowerCase();
		if (!m.has(n))
			m.set(n, []);
		m.get(n).push(rawHeaders[i + 1]);
	}
	return m;
}

const hget = (h, n) => (h.has(n) ? h.get(n).join(',') : undefined);

/* ---- key mapping (see "Key mapping" in the file comment) --------------- */

const KEY_MAX_BYTES = 1024;
const PIECE_BYTES = 200;     /* an upstream component ends once this full */
const HIGH = '\ud7ff';       /* starts the escape of code points >= U+D7FF */
const HEX2 = /^[0-9A-F]{2}$/;

/* The upstream key of real key `key` (a string).  Deterministic from left
 * to right, hence prefix-stable (encodeKey(P) is a prefix of encodeKey(K)
 * whenever K starts with P), and order-preserving (see the file comment). */
function encodeKey(key) {
	let out = '';
	let piece = 0;          /* bytes in the current upstream component */
	for (const ch of key) {  /* code points */
		const cp = ch.codePointAt(0);
		let unit, len;
		if (cp <= 0x30) {
			unit = '0' + (cp < 16 ? '0' : '') + cp.toString(16).toUpperCase();
			len = 3;
		} else if (cp < 0xd7ff) {
			unit = ch;
			len = cp < 0x80 ? 1 : cp < 0x800 ? 2 : 3;
		} else {
			unit = HIGH + Buffer.from(ch, 'utf8').toString('hex').toUpperCase();
			len = 3 + unit.length - 1;
		}
		out += unit;
		piece += len;
		if (cp === 0x2f || piece >= PIECE_BYTES) {
			out += '/';
			piece = 0;
		}
	}
	return out;
}

/* The real key of upstream key `up`; the inverse of encodeKey.  Text that
 * encodeKey cannot have produced is kept as it is ('/' aside). */
function decodeKey(up) {
	let out = '';
	let i = 0;
	while (i < up.length) {
		const c = up[i];
		if (c === '/') {
			i++;
		} else if (c === '0' && HEX2.test(up.substr(i + 1, 2)) &&
		           parseInt(up.substr(i + 1, 2), 16) <= 0x30) {
			out += String.fromCharCode(parseInt(up.substr(i + 1, 2), 16));
			i += 3;
		} else if (c === HIGH && HEX2.test(up.substr(i + 1, 2))) {
			const n = parseInt(up.substr(i + 1, 2), 16) >= 0xf0 ? 4 : 3;
			const hex = up.substr(i + 1, 2 * n);
			if (hex.length === 2 * n && /^[0-9A-F]+$/.test(hex)) {
				out += Buffer.from(hex, 'hex').toString('utf8');
				i += 1 + 2 * n;
			} else {
				out += c;
				i++;
			}
		} else {
			out += c;
			i++;
		}
	}
	return out;
}

/* An upstream key greater than the upstream key of every real key that
 * starts with realPrefix, and smaller than that of every other real key
 * that sorts after realPrefix: where a listing resumes after a common
 * prefix.  (Upstream keys hold no code unit above U+D7FF.) */
const pastPrefix = (realPrefix) => encodeKey(realPrefix) + '\uffff';

/* The upstream request path of an object: /BUCKET/UriEncode(encodeKey(key)). */
function upstreamObjectPath(bucket, key) {
	return '/' + uriEncode(Buffer.from(bucket, 'utf8'), true) + '/' +
		uriEncode(Buffer.from(encodeKey(key), 'utf8'), false);
}

/* ---- AWS-style errors ------------------------------------------------- */

const FAULT_ERRORS = {
	400: ['InvalidRequest', 'Injected fault: bad request.'],
	403: ['AccessDenied', 'Access Denied'],
	404: ['NoSuchKey', 'The specified key does not exist.'],
	409: ['OperationAborted', 'A conflicting conditional operation is currently in progress against this resource. Please try again.'],
	412: ['PreconditionFailed', 'At least one of the pre-conditions you specified did not hold'],
	429: ['SlowDown', 'Please reduce your request rate.'],
	500: ['InternalError', 'We encountered an internal error. Please try again.'],
	501: ['NotImplemented', 'A header you provided implies functionality that is not implemented'],
	502: ['BadGateway', 'Injected fault: bad gateway.'],
	503: ['SlowDown', 'Please reduce your request rate.'],
	504: ['GatewayTimeout', 'Injected fault: gateway timeout.'],
};

class S3Error {
	/* extra: [[element, text], ...] placed between Message and RequestId;
	 * headers: {name: value} added to the answer. */
	constructor(status, code, message, extra, headers) {
		this.status = status;
		this.code = code;
		this.message = message;
		this.extra = extra || [];
		this.headers = headers || {};
	}
}

/* Answers an AWS error document (no body for HEAD, as S3 does). */
function sendError(ctx, err) {
	const res = ctx.res;
	const body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error>' +
		`<Code>${xmlEscape(err.code)}</Code><Message>${xmlEscape(err.message)}</Message>` +
		err.extra.map(([k, v]) => `<${k}>${xmlEscape(v)}</${k}>`).join('') +
		`<RequestId>${ctx.id}</RequestId><HostId>${ctx.hostId}</HostId></Error>`;
	ctx.entry.error = err.code;
	const headers = {
		'x-amz-request-id': ctx.id,
		'x-amz-id-2': ctx.hostId,
		'Content-Type': 'application/xml',
		'Server': 'AmazonS3',
		...err.headers,
	};
	if (ctx.method === 'HEAD') {
		res.writeHead(err.status, headers);
		res.end();
	} else {
		headers['Content-Length'] = Buffer.byteLength(body);
		res.writeHead(err.status, headers);
		res.end(body);
	}
}

/* ---- S3 command of a request ----------------------------------------- */

const BUCKET_SUBRESOURCES = [
	['acl', 'Acl'], ['cors', 'Cors'], ['lifecycle', 'LifecycleConfiguration'],
	['policy', 'Policy'], ['tagging', 'Tagging'], ['versioning', 'Versioning'],
	['website', 'Website'], ['encryption', 'Encryption'], ['logging', 'Logging'],
	['notification', 'NotificationConfiguration'], ['replication', 'Replication'],
	['requestPayment', 'RequestPayment'], ['accelerate', 'AccelerateConfiguration'],
	['ownershipControls', 'OwnershipControls'], ['publicAccessBlock', 'PublicAccessBlock'],
	['object-lock', 'ObjectLockConfiguration'],
];

/* The AWS operation name for a path-style request; key is null for
 * bucket-level requests, bucket '' for the service. */
function classify(method, bucket, key, q, headers) {
	const has = (n) => q.has(n);
	if (bucket === '')
		return method === 'GET' ? 'ListBuckets' : 'Unknown';
	if (method === 'OPTIONS')
		return 'PreflightRequest';
	if (key === null) {
		const sub = BUCKET_SUBRESOURCES.find(([n]) => has(n));
		switch (method) {
		case 'GET':
			if (q.get('list-type') === '2') return 'ListObjectsV2';
			if (has('uploads')) return 'ListMultipartUploads';
			if (has('versions')) return 'ListObjectVersions';
			if (has('location')) return 'GetBucketLocation';
			if (sub) return 'GetBucket' + sub[1];
			return 'ListObjects';
		case 'HEAD': return 'HeadBucket';
		case 'PUT': return sub ? 'PutBucket' + sub[1] : 'CreateBucket';
		case 'DELETE': return sub ? 'DeleteBucket' + sub[1] : 'DeleteBucket';
		case 'POST': return has('delete') ? 'DeleteObjects' : 'PostObject';
		default: return 'Unknown';
		}
	}
	switch (method) {
	case 'GET':
		if (has('uploadId')) return 'ListParts';
		if (has('acl')) return 'GetObjectAcl';
		if (has('tagging')) return 'GetObjectTagging';
		if (has('attributes')) return 'GetObjectAttributes';
		return 'GetObject';
	case 'HEAD': return 'HeadObject';
	case 'PUT':
		if (has('uploadId') && has('partNumber'))
			return headers.has('x-amz-copy-source') ? 'UploadPartCopy' : 'UploadPart';
		if (has('tagging')) return 'PutObjectTagging';
		if (has('acl')) return 'PutObjectAcl';
		if (headers.has('x-amz-copy-source')) return 'CopyObject';
		return 'PutObject';
	case 'DELETE':
		if (has('uploadId')) return 'AbortMultipartUpload';
		if (has('tagging')) return 'DeleteObjectTagging';
		return 'DeleteObject';
	case 'POST':
		if (has('uploads')) return 'CreateMultipartUpload';
		if (has('uploadId')) return 'CompleteMultipartUpload';
		if (has('restore')) return 'RestoreObject';
		if (has('select')) return 'SelectObjectContent';
		return 'Unknown';
	default: return 'Unknown';
	}
}

function xmlUnescape(s) {
	return s.replace(/&(lt|gt|amp|quot|apos|#(\d+)|#x([0-9a-fA-F]+));/g, (m, n, d, x) => {
		if (d) return String.fromCodePoint(Number(d));
		if (x) return String.fromCodePoint(parseInt(x, 16));
		return { lt: '<', gt: '>', amp: '&', quot: '"', apos: '\'' }[n];
	});
}

/* ---- SigV4 verification ---------------------------------------------- */

const PRESIGN_PARAMS = new Set(['X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Date',
	'X-Amz-Expires', 'X-Amz-SignedHeaders', 'X-Amz-Signature', 'X-Amz-Security-Token']);

function parseAmzDate(s) {
	const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s || '');
	if (!m)
		return NaN;
	return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
}

function hexBytes(buf) {
	return Array.from(buf, (b) => (b < 16 ? '0' : '') + b.toString(16)).join(' ');
}

/* Verifies the request's SigV4 signature; returns the access key id or
 * throws an S3Error. */
function authenticate(ctx) {
	const h = ctx.headers;
	const authz = hget(h, 'authorization');
	const presigned = ctx.query.some((p) => p.name === 'X-Amz-Algorithm');
	const qget = (n) => { const p = ctx.query.find((x) => x.name === n); return p ? p.value : undefined; };
	let algorithm, credential, signedHeadersStr, signature, amzDate, payloadHash;
	const malformed = presigned ? 'AuthorizationQueryParametersError' : 'AuthorizationHeaderMalformed';

	if (authz !== undefined && presigned)
		throw new S3Error(400, 'InvalidArgument', 'Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified',
			[['ArgumentName', 'Authorization'], ['ArgumentValue', authz]]);
	if (authz === undefined && !presigned) {
		if (ctx.query.some((p) => p.name === 'Signature' || p.name === 'AWSAccessKeyId'))
			throw new S3Error(400, 'InvalidRequest', 'The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.');
		throw new S3Error(403, 'AccessDenied', 'Access Denied');
	}
	if (presigned) {
		algorithm = qget('X-Amz-Algorithm');
		credential = qget('X-Amz-Credential');
		signedHeadersStr = qget('X-Amz-SignedHeaders');
		signature = qget('X-Amz-Signature');
		amzDate = qget('X-Amz-Date');
		if (algorithm !== 'AWS4-HMAC-SHA256')
			throw new S3Error(400, malformed, 'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"');
		if (!credential || !signedHeadersStr || !signature || !amzDate || qget('X-Amz-Expires') === undefined)
			throw new S3Error(400, malformed, 'Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.');
		payloadHash = hget(h, 'x-amz-content-sha256') || 'UNSIGNED-PAYLOAD';
	} else {
		const m = /^(\S+)\s+(.*)$/.exec(authz.trim());
		algorithm = m ? m[1] : authz.trim();
		if (algorithm !== 'AWS4-HMAC-SHA256')
			throw new S3Error(400, 'InvalidArgument', 'Unsupported Authorization Type',
				[['ArgumentName', 'Authorization'], ['ArgumentValue', authz]]);
		const fields = {};
		for (const part of m[2].split(',')) {
			const eq = part.indexOf('=');
			if (eq > 0)
				fields[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
		}
		credential = fields.Credential;
		signedHeadersStr = fields.SignedHeaders;
		signature = fields.Signature;
		if (!credential || !signedHeadersStr || !signature)
			throw new S3Error(400, malformed, 'The authorization header is malformed; the authorization header requires three components: Credential, SignedHeaders, and Signature.');
		amzDate = hget(h, 'x-amz-date');
		payloadHash = hget(h, 'x-amz-content-sha256');
		if (payloadHash === undefined)
			throw new S3Error(400, 'InvalidRequest', 'Missing required header for this request: x-amz-content-sha256');
	}

	/* credential scope */
	const scope = credential.split('/');
	if (scope.length !== 5)
		throw new S3Error(400, malformed, `The authorization header is malformed; the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".`);
	const [akid, sdate, sregion, sservice, sterm] = scope;
	const secret = cfg.keys.get(akid);
	if (secret === undefined)
		throw new S3Error(403, 'InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.',
			[['AWSAccessKeyId', akid]]);
	ctx.entry.access_key = akid;

	/* time */
	const t = parseAmzDate(amzDate);
	if (Number.isNaN(t))
		throw new S3Error(403, 'AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header');
	if (sdate !== amzDate.slice(0, 8))
		throw new S3Error(400, malformed, `The authorization header is malformed; Invalid credential date "${sdate}". This date is not the same as X-Amz-Date: "${amzDate.slice(0, 8)}".`);
	if (sregion !== cfg.region)
		throw new S3Error(400, malformed, `The authorization header is malformed; the region '${sregion}' is wrong; expecting '${cfg.region}'`,
			[['Region', cfg.region]]);
	if (sservice !== 's3' || sterm !== 'aws4_request')
		throw new S3Error(400, malformed, `The authorization header is malformed; incorrect service "${sservice}" or terminal "${sterm}". This endpoint belongs to "s3" and wants "aws4_request".`);
	const now = Date.now();
	if (presigned) {
		const exp = Number(qget('X-Amz-Expires'));
		if (!Number.isInteger(exp) || exp < 0)
			throw new S3Error(400, malformed, 'X-Amz-Expires should be a number');
		if (exp > 604800)
			throw new S3Error(400, malformed, 'X-Amz-Expires must be less than a week (in seconds) that is 604800');
		if (t - now > cfg.maxSkewMs)
			throw new S3Error(403, 'AccessDenied', 'Request is not valid yet');
		if (now > t + exp * 1000)
			throw new S3Error(403, 'AccessDenied', 'Request has expired',
				[['X-Amz-Expires', String(exp)], ['Expires', new Date(t + exp * 1000).toISOString()],
				 ['ServerTime', new Date(now).toISOString()]]);
	} else if (Math.abs(now - t) > cfg.maxSkewMs) {
		throw new S3Error(403, 'RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.',
			[['RequestTime', amzDate], ['ServerTime', new Date(now).toISOString()],
			 ['MaxAllowedSkewMilliseconds', String(cfg.maxSkewMs)]]);
	}

	/* signed headers */
	const signedHeaders = signedHeadersStr.split(';');
	if (!signedHeaders.includes('host'))
		throw new S3Error(400, malformed, 'The authorization header is malformed; host must be a signed header.');
	const unsigned = [];
	for (const name of h.keys()) {
		if (name.startsWith('x-amz-') && !signedHeaders.includes(name))
			unsigned.push(name);
	}
	if (unsigned.length)
		throw new S3Error(403, 'AccessDenied', 'There were headers present in the request which were not signed',
			[['HeadersNotSigned', unsigned.join(', ')]]);

	/* payload */
	if (!presigned || h.has('x-amz-content-sha256')) {
		if (/^STREAMING-/.test(payloadHash))
			throw new S3Error(501, 'NotImplemented', 'A header you provided implies functionality that is not implemented (s3front does not verify streaming payloads)',
				[['Header', 'x-amz-content-sha256']]);
		if (payloadHash !== 'UNSIGNED-PAYLOAD') {
			if (!/^[0-9a-f]{64}$/.test(payloadHash))
				throw new S3Error(400, 'InvalidArgument', 'x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD, STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER or a valid sha256 value.',
					[['ArgumentName', 'x-amz-content-sha256'], ['ArgumentValue', payloadHash]]);
			const computed = sha256hex(ctx.body);
			if (computed !== payloadHash)
				throw new S3Error(400, 'XAmzContentSHA256Mismatch', 'The provided \'x-amz-content-sha256\' header does not match what was computed.',
					[['ClientComputedContentSHA256', payloadHash], ['S3ComputedContentSHA256', computed]]);
		}
	}

	/* canonical request, string to sign, signature */
	const canonHeaders = signedHeaders.map((n) => {
		const vals = (h.get(n) || []).map((v) => v.trim().replace(/[ \t]+/g, ' '));
		return `${n}:${vals.join(',')}\n`;
	}).join('');
	const canonicalRequest = latin1([
		ctx.method,
		ctx.canonicalPath,
		canonicalQuery(ctx.query, presigned ? (n) => n === 'X-Amz-Signature' : null),
		canonHeaders,
		signedHeadersStr,
		payloadHash,
	].join('\n'));
	const scopeStr = `${sdate}/${sregion}/${sservice}/${sterm}`;
	const stringToSign = `AWS4-HMAC-SHA256\n${amzDate}\n${scopeStr}\n${sha256hex(canonicalRequest)}`;
	let key = hmac('AWS4' + secret, sdate);
	key = hmac(key, sregion);
	key = hmac(key, sservice);
	key = hmac(key, sterm);
	const expected = hmac(key, stringToSign).toString('hex');
	const given = String(signature).toLowerCase();
	if (given.length !== expected.length ||
	    !crypto.timingSafeEqual(Buffer.from(given), Buffer.from(expected))) {
		throw new S3Error(403, 'SignatureDoesNotMatch',
			'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
			[['AWSAccessKeyId', akid], ['StringToSign', stringToSign], ['SignatureProvided', signature],
			 ['StringToSignBytes', hexBytes(Buffer.from(stringToSign))],
			 ['CanonicalRequest', canonicalRequest.toString('utf8')],
			 ['CanonicalRequestBytes', hexBytes(canonicalRequest)]]);
	}
	return akid;
}

/* ---- user metadata ---------------------------------------------------- */

/* Throws MetadataTooLarge when the x-amz-meta-* names (without prefix) and
 * values add up to more than the limit; see the file comment. */
function checkMetadata(ctx) {
	if (ctx.method !== 'PUT' && ctx.method !== 'POST')
		return;
	let size = 0;
	for (const [name, vals] of ctx.headers) {
		if (!name.startsWith('x-amz-meta-'))
			continue;
		for (const v of vals)
			size += latin1(name.slice('x-amz-meta-'.length)).length + latin1(v).length;
	}
	ctx.entry.metadata_bytes = size;
	if (size > cfg.metadataLimit)
		throw new S3Error(400, 'MetadataTooLarge', 'Your metadata headers exceed the maximum allowed metadata size',
			[['Size', String(size)], ['MaxSizeAllowed', String(cfg.metadataLimit)]]);
}

/* RFC 2047 form of a raw (latin1) header value when it has non-ASCII
 * bytes; the value itself otherwise. */
function encodeMetaValue(v) {
	const bytes = latin1(v);
	if (!bytes.some((b) => b >= 0x80))
		return v;
	return `=?UTF-8?B?${bytes.toString('base64')}?=`;
}

/* ---- fault rules ------------------------------------------------------ */

const RULE_FIELDS = new Set(['status', 'code', 'message', 'reset', 'delay_ms', 'after_forward',
	'command', 'method', 'bucket', 'key_prefix', 'nth', 'count', 'rate', 'seed']);
let rules = [];
let nextRuleId = 1;

function mulberry32(seed) {
	let a = seed >>> 0;
	return () => {
		a = (a + 0x6D2B79F5) >>> 0;
		let t = a;
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
}

/* Validates a rule spec; returns an error string or null. */
function validateRule(r) {
	if (r === null || typeof r !== 'object' || Array.isArray(r))
		return 'a rule must be a JSON object';
	for (const k of Object.keys(r))
		if (!RULE_FIELDS.has(k))
			return `unknown field "${k}" (known: ${[...RULE_FIELDS].join(', ')})`;
	if (r.status !== undefined && !(Number.isInteger(r.status) && r.status >= 100 && r.status <= 599))
		return 'status must be an HTTP status code';
	if (r.status !== undefined && r.status < 400 && !r.code)
		return 'status below 400 needs no fault: use 400..599';
	for (const k of ['reset', 'after_forward'])
		if (r[k] !== undefined && typeof r[k] !== 'boolean')
			return `${k} must be true or false`;
	for (const k of ['delay_ms', 'nth', 'count', 'seed'])
		if (r[k] !== undefined && !(Number.isInteger(r[k]) && r[k] >= 0))
			return `${k} must be a non-negative integer`;
	if (r.nth !== undefined && r.nth < 1)
		return 'nth counts from 1';
	if (r.rate !== undefined && !(typeof r.rate === 'number' && r.rate >= 0 && r.rate <= 1))
		return 'rate must be a number in [0, 1]';
	for (const k of ['command', 'method', 'bucket'])
		if (r[k] !== undefined && typeof r[k] !== 'string' &&
		    !(Array.isArray(r[k]) && r[k].every((x) => typeof x === 'string')))
			return `${k} must be a string or an array of strings`;
	if (r.key_prefix !== undefined && typeof r.key_prefix !== 'string')
		return 'key_prefix must be a string';
	for (const k of ['code', 'message'])
		if (r[k] !== undefined && typeof r[k] !== 'string')
			return `${k} must be a string`;
	if (r.status === undefined && !r.reset && !r.delay_ms)
		return 'a rule needs status, reset or delay_ms';
	if (r.after_forward && r.status === undefined && !r.reset)
		return 'after_forward needs status or reset';
	if (r.status !== undefined && r.reset)
		return 'status and reset exclude each other';
	return null;
}

function addRule(spec) {
	const rule = {
		id: nextRuleId++, spec, matched: 0, fired: 0,
		rng: spec.rate !== undefined ? mulberry32(spec.seed !== undefined ? spec.seed : 1) : null,
	};
	rules.push(rule);
	return rule.id;
}

const oneOf = (want, got) => want === undefined || (Array.isArray(want) ? want.includes(got) : want === got);

function ruleMatches(spec, ctx) {
	if (!oneOf(spec.command, ctx.entry.command) || !oneOf(spec.method, ctx.method) ||
	    !oneOf(spec.bucket, ctx.entry.bucket))
		return false;
	if (spec.key_prefix !== undefined) {
		const k = ctx.entry.key || '';
		const keys = ctx.entry.keys || [];
		if (!k.startsWith(spec.key_prefix) && !keys.some((x) => x.startsWith(spec.key_prefix)))
			return false;
	}
	return true;
}

/* The rule that fires for this request, or null; updates counters. */
function pickFault(ctx) {
	let chosen = null;
	for (const r of rules) {
		if (!ruleMatches(r.spec, ctx))
			continue;
		r.matched++;
		if (chosen)
			continue;
		const s = r.spec;
		let fire = s.nth !== undefined ? r.matched === s.nth : true;
		if (fire && s.count !== undefined && r.fired >= s.count)
			fire = false;
		if (fire && r.rng)
			fire = r.rng() < s.rate;
		if (fire) {
			r.fired++;
			chosen = r;
		}
	}
	return chosen;
}

function describeFault(s) {
	const parts = [];
	if (s.delay_ms) parts.push(`delay:${s.delay_ms}`);
	if (s.after_forward) parts.push('after_forward');
	if (s.status !== undefined) parts.push(`status:${s.status}`);
	if (s.reset) parts.push('reset');
	return parts.join('+');
}

function faultError(s) {
	const [code, message] = FAULT_ERRORS[s.status] || ['InjectedFault', `Injected fault with status ${s.status}.`];
	return new S3Error(s.status, s.code || code, s.message || message);
}

/* ---- request log ------------------------------------------------------ */

let logEntries = [];
let logSeq = 0;

function finishEntry(ctx) {
	if (ctx.logged)
		return;
	ctx.logged = true;
	const e = ctx.entry;
	if (e.status === undefined)
		e.status = ctx.res.headersSent ? ctx.res.statusCode : 0;
	e.duration_ms = Math.round((performance.now() - ctx.t0) * 10) / 10;
	logEntries.push(e);
	if (logEntries.length > cfg.maxLogEntries)
		logEntries.splice(0, logEntries.length - cfg.maxLogEntries);
	if (logFd !== null) {
		try {
			fs.writeSync(logFd, JSON.stringify(e) + '\n');
		} catch (err) {
			process.stderr.write(`s3front: cannot write log: ${err.message}\n`);
		}
	}
}

/* ---- requests to s3rver ------------------------------------------------ */

const HOP_HEADERS = new Set(['authorization', 'host', 'connection', 'keep-alive', 'expect',
	'transfer-encoding', 'content-length', 'te', 'trailer', 'upgrade', 'proxy-authorization',
	'proxy-connection']);
const EMPTY = Buffer.alloc(0);
const upstreamHost = () => `${cfg.upstreamHost}:${cfg.upstreamPort}`;

/* The FIFO readers-writer lock over s3rver's store (see "s3rver's races"
 * in the file comment).  Invariant: exclusive implies
 * shared === 0; waiters are granted strictly in arrival order, so a
 * waiting writer is never starved by later readers. */
const tree = { shared: 0, exclusive: false, queue: [] };

function treeGrant() {
	while (tree.queue.length && !tree.exclusive) {
		const w = tree.queue[0];
		if (w.exclusive) {
			if (tree.shared > 0)
				return;
			tree.exclusive = true;
		} else {
			tree.shared++;
		}
		tree.queue.shift();
		w.resolve();
	}
}

function treeAcquire(exclusive) {
	return new Promise((resolve) => {
		tree.queue.push({ exclusive, resolve });
		treeGrant();
	});
}

function treeRelease(exclusive) {
	if (exclusive)
		tree.exclusive = false;
	else
		tree.shared--;
	treeGrant();
}

/* One request to s3rver under the tree lock (GET and HEAD shared, all
 * else exclusive).  The answer is read whole before the lock is released
 * (a later PUT truncates the very file a GET streams from); resolves with
 * a readable stream of it that carries statusCode, headers and rawHeaders
 * like an http.IncomingMessage.  Rejects on a connection error. */
async function upstreamRequest(method, path, headers, body) {
	const exclusive = method !== 'GET' && method !== 'HEAD';
	await treeAcquire(exclusive);
	try {
		return await upstreamWhole(method, path, headers, body);
	} finally {
		treeRelease(exclusive);
	}
}

/* The request to s3rver and its whole answer, as upstreamRequest resolves
 * it; the caller holds the tree lock. */
async function upstreamWhole(method, path, headers, body) {
	const res = await upstreamSend(method, path, headers, body, false);
	const data = await readBody(res);
	const out = new PassThrough();
	out.statusCode = res.statusCode;
	out.headers = res.headers;
	out.rawHeaders = res.rawHeaders;
	out.end(data);
	return out;
}

/* The request itself.  A connection error on a reused keep-alive socket is
 * retried once (s3rver closes idle sockets; see upstreamAgent). */
function upstreamSend(method, path, headers, body, retried) {
	return new Promise((resolve, reject) => {
		const up = http.request({
			host: cfg.upstreamHost, port: cfg.upstreamPort, method, path, headers,
			agent: upstreamAgent,
		}, resolve);
		up.on('error', (err) => {
			if (up.reusedSocket && !retried &&
			    (err.code === 'ECONNRESET' || err.code === 'EPIPE'))
				resolve(upstreamSend(method, path, headers, body, true));
			else
				reject(err);
		});
		up.end(body);
	});
}

/* upstreamRequest (or upstreamWhole when the caller holds the tree lock:
 * locked) for the client request ctx: counts it in the log entry, whose
 * upstream_status becomes the highest status seen. */
async function upstreamFor(ctx, method, path, headers, body, locked) {
	ctx.entry.upstream_requests = (ctx.entry.upstream_requests || 0) + 1;
	const res = await (locked ? upstreamWhole : upstreamRequest)(method, path, headers, body);
	if (ctx.entry.upstream_status === undefined || res.statusCode > ctx.entry.upstream_status)
		ctx.entry.upstream_status = res.statusCode;
	return res;
}

/* x-amz-copy-source for s3rver: the source decoded fully, its key mapped
 * to the upstream key, then encodeURI() for s3rver's decodeURI() (see the
 * file comment).  Sets ctx.copySourceKey to the real source key. */
function copySourceUpstream(ctx, v) {
	const q = v.indexOf('?');
	const path = pctDecode(q < 0 ? v : v.slice(0, q), false).toString('utf8').replace(/^\//, '');
	const slash = path.indexOf('/');
	if (slash < 0)
		return encodeURI('/' + path);
	ctx.copySourceKey = path.slice(slash + 1);
	return encodeURI('/' + path.slice(0, slash) + '/' + encodeKey(ctx.copySourceKey));
}

/* Sends the client's request on to s3rver (key mapped; Range left out
 * when the front cuts the range itself); resolves with s3rver's answer as
 * upstreamRequest does, or rejects on a connection error. */
function forward(ctx) {
	const headers = [];
	for (let i = 0; i + 1 < ctx.req.rawHeaders.length; i += 2) {
		const n = ctx.req.rawHeaders[i], ln = n.toLowerCase();
		let v = ctx.req.rawHeaders[i + 1];
		if (HOP_HEADERS.has(ln) || (ln === 'range' && ctx.rangeByFront))
			continue;
		if (ln === 'x-amz-copy-source')
			v = copySourceUpstream(ctx, v);
		headers.push(n, v);
	}
	headers.push('Host', upstreamHost());
	headers.push('Content-Length', String(ctx.body.length));
	const q = canonicalQuery(ctx.query, (n) => PRESIGN_PARAMS.has(n));
	const path = ctx.upstreamPath + (q ? '?' + q : '');
	return upstreamFor(ctx, ctx.method, path, headers, ctx.body);
}

/* Response headers of s3rver as the client gets them.  s3rver's
 * x-amz-error-detail-Key would show the upstream key: dropped. */
function clientHeaders(raw) {
	const out = [];
	for (let i = 0; i + 1 < raw.length; i += 2) {
		const ln = raw[i].toLowerCase();
		if (ln === 'connection' || ln === 'keep-alive' || ln === 'transfer-encoding' ||
		    ln === 'x-amz-error-detail-key')
			continue;
		out.push(raw[i], ln.startsWith('x-amz-meta-') ? encodeMetaValue(raw[i + 1]) : raw[i + 1]);
	}
	return out;
}

/* headers (a raw [name, value, ...] list) without the named ones
 * (lowercase), plus the pairs of `add`. */
function replaceHeaders(headers, drop, add) {
	const out = [];
	for (let i = 0; i + 1 < headers.length; i += 2)
		if (!drop.includes(headers[i].toLowerCase()))
			out.push(headers[i], headers[i + 1]);
	return out.concat(add);
}

function drain(stream) {
	return new Promise((resolve) => {
		stream.on('data', () => {});
		stream.on('end', resolve);
		stream.on('error', resolve);
		stream.on('close', resolve);
	});
}

function readBody(req) {
	return new Promise((resolve, reject) => {
		const chunks = [];
		req.on('data', (c) => chunks.push(c));
		req.on('end', () => resolve(Buffer.concat(chunks)));
		req.on('error', reject);
	});
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* Element text of an answer: xmlEscape, and C0 controls other than tab
 * and newline as character references (a raw CR would not survive an XML
 * parser). */
function xmlText(s) {
	return xmlEscape(s).replace(/[\x00-\x08\x0b-\x1f]/g,
		(c) => `&#x${c.charCodeAt(0).toString(16).toUpperCase()};`);
}

/* The text of the first <name>...</name> in xml (raw, not unescaped), or
 * undefined. */
function xmlElement(xml, name) {
	const open = xml.indexOf(`<${name}>`);
	if (open < 0)
		return undefined;
	const from = open + name.length + 2;
	const close = xml.indexOf(`</${name}>`, from);
	return close < 0 ? undefined : xml.slice(from, close);
}

/* An answer the front writes: {status, headers: [name, value, ...], and
 * body (Buffer) or stream (an upstream response, optionally with cut:
 * [first, last] inclusive byte positions to keep)}. */
function xmlAnswer(ctx, status, xml) {
	const body = Buffer.from(xml, 'utf8');
	return {
		status, body,
		headers: ['x-amz-request-id', ctx.id, 'x-amz-id-2', ctx.hostId,
			'Content-Type', 'application/xml', 'Server', 'AmazonS3',
			'Content-Length', String(body.length)],
	};
}

/* The answer carrying an upstream response whose body has been read. */
function bufferedAnswer(up, body) {
	return {
		status: up.statusCode, body,
		headers: replaceHeaders(clientHeaders(up.rawHeaders), ['content-length'],
			['Content-Length', String(body.length)]),
	};
}

/* Thrown by the front's own operations to answer s3rver's response as is
 * (an error s3rver found, such as NoSuchBucket). */
class UpstreamAnswer {
	constructor(up, body) {
		this.answer = bufferedAnswer(up, body);
	}
}

/* ---- conditional requests that s3rver ignores ------------------------- */

/* s3rver honours only If-None-Match and If-Modified-Since on GET/HEAD.  The
 * front adds what S3 does besides: If-Match and If-Unmodified-Since on
 * GetObject/HeadObject (412 PreconditionFailed; a true If-Match overrides a
 * false If-Unmodified-Since, as RFC 7232 and S3 do), and conditional writes
 * on PutObject: If-None-Match: * (412 when the key exists) and If-Match:
 * ETAG (404 NoSuchKey when absent, 412 when the ETag differs).  The current
 * state comes from a HEAD to s3rver; every write to a key (PutObject,
 * CopyObject, DeleteObject, each key of DeleteObjects) passes through a
 * per-key lock in the front, so a conditional PUT is atomic with respect
 * to other requests through it. */

const keyLocks = new Map();

/* Runs fn() once every earlier holder of lockKey is done. */
async function withKeyLock(lockKey, fn) {
	const prev = keyLocks.get(lockKey) || Promise.resolve();
	let release;
	const mine = new Promise((r) => { release = r; });
	const tail = prev.then(() => mine);
	keyLocks.set(lockKey, tail);
	await prev;
	try {
		return await fn();
	} finally {
		release();
		if (keyLocks.get(lockKey) === tail)
			keyLocks.delete(lockKey);
	}
}

/* HEAD of the object on s3rver: {status, etag, lastModified}. */
async function headUpstream(ctx) {
	ctx.entry.upstream_requests = (ctx.entry.upstream_requests || 0) + 1;
	const res = await upstreamRequest('HEAD', ctx.upstreamPath, { Host: upstreamHost() }, EMPTY);
	res.resume();
	return {
		status: res.statusCode,
		etag: res.headers.etag,
		lastModified: res.headers['last-modified'] ? Date.parse(res.headers['last-modified']) : NaN,
	};
}

const unquote = (t) => t.trim().replace(/^W\//, '').replace(/^"(.*)"$/, '$1');

/* Does an If-Match / If-None-Match list match the ETag? '*' matches any. */
function etagListMatches(list, etag) {
	if (etag === undefined)
		return false;
	return list.split(',').some((t) => t.trim() === '*' || unquote(t) === unquote(etag));
}

/* Throws the S3Error the preconditions call for, or returns. */
async function checkPreconditions(ctx) {
	const h = ctx.headers;
	const cmd = ctx.entry.command;
	const ifMatch = hget(h, 'if-match');
	const ifNoneMatch = hget(h, 'if-none-match');
	const ifUnmodified = hget(h, 'if-unmodified-since');
	if (cmd === 'GetObject' || cmd === 'HeadObject') {
		if (ifMatch === undefined && ifUnmodified === undefined)
			return;
		const cur = await headUpstream(ctx);
		if (cur.status !== 200)
			return; /* s3rver answers the 404 itself */
		if (ifMatch !== undefined) {
			if (!etagListMatches(ifMatch, cur.etag))
				throw new S3Error(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', [['Condition', 'If-Match']]);
			return;
		}
		const t = Date.parse(ifUnmodified);
		if (!Number.isNaN(t) && !Number.isNaN(cur.lastModified) && cur.lastModified > t)
			throw new S3Error(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', [['Condition', 'If-Unmodified-Since']]);
		return;
	}
	if (cmd !== 'PutObject' || (ifMatch === undefined && ifNoneMatch === undefined))
		return;
	if (ifNoneMatch !== undefined && ifNoneMatch.trim() !== '*')
		throw new S3Error(501, 'NotImplemented', 'A header you provided implies functionality that is not implemented', [['Header', 'If-None-Match']]);
	const cur = await headUpstream(ctx);
	if (ifNoneMatch !== undefined && cur.status === 200)
		throw new S3Error(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', [['Condition', 'If-None-Match']]);
	if (ifMatch !== undefined) {
		if (cur.status === 404)
			throw new S3Error(404, 'NoSuchKey', 'The specified key does not exist.', [['Key', ctx.entry.key]]);
		if (!etagListMatches(ifMatch, cur.etag))
			throw new S3Error(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', [['Condition', 'If-Match']]);
	}
}

/* ---- Content-MD5 and key length ---------------------------------------- */

/* Throws InvalidDigest / BadDigest when a PUT or POST carries a Content-MD5
 * that is malformed or does not match the body, and InvalidRequest when
 * DeleteObjects has neither Content-MD5 nor an x-amz-checksum-* header. */
function checkContentMd5(ctx) {
	if (ctx.method !== 'PUT' && ctx.method !== 'POST')
		return;
	const v = hget(ctx.headers, 'content-md5');
	if (v === undefined) {
		if (ctx.entry.command === 'DeleteObjects' &&
		    ![...ctx.headers.keys()].some((n) => n.startsWith('x-amz-checksum-')))
			throw new S3Error(400, 'InvalidRequest', 'Missing required header for this request: Content-MD5');
		return;
	}
	const given = v.trim();
	const digest = Buffer.from(given, 'base64');
	if (digest.length !== 16 || digest.toString('base64') !== given)
		throw new S3Error(400, 'InvalidDigest', 'The Content-MD5 you specified was invalid.',
			[['Content-MD5', given]]);
	const computed = crypto.createHash('md5').update(ctx.body).digest();
	if (!computed.equals(digest))
		throw new S3Error(400, 'BadDigest', 'The Content-MD5 you specified did not match what we received.',
			[['ExpectedDigest', digest.toString('hex')], ['CalculatedDigest', computed.toString('hex')]]);
}

/* Throws KeyTooLongError for an object key over 1024 bytes of UTF-8. */
function checkKeyLength(ctx, key) {
	const n = Buffer.byteLength(key, 'utf8');
	if (n > KEY_MAX_BYTES)
		throw new S3Error(400, 'KeyTooLongError', 'Your key is too long',
			[['Size', String(n)], ['MaxSizeAllowed', String(KEY_MAX_BYTES)]]);
}

/* ---- ListObjects and ListObjectsV2 ------------------------------------- */

const S3_NS = 'http://s3.amazonaws.com/doc/2006-03-01/';
const OWNER_XML = '<Owner><ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>' +
	'<DisplayName>s3front</DisplayName></Owner>';

/* Reads the objects under a real prefix from s3rver in key order, a page
 * at a time, from an upstream start-after position that can be moved
 * forward.  Entries: {upKey, key (real), kb (its UTF-8 bytes),
 * lastModified, etag, size}.  s3rver's answers are checked to be strictly
 * increasing; an UpstreamAnswer is thrown when s3rver refuses. */
class UpstreamCursor {
	constructor(ctx, bucket, prefix, upAfter) {
		this.ctx = ctx;
		this.prefix = prefix;
		this.upPrefix = encodeKey(prefix);
		this.bucketPath = '/' + uriEncode(Buffer.from(bucket, 'utf8'), true);
		this.after = upAfter;   /* upstream start-after of the next fetch */
		this.buf = [];
		this.pos = 0;
		this.done = false;
	}

	/* The next entry, or null at the end; want is how many entries the
	 * caller expects to need at most (the size of a fetch). */
	async next(want) {
		while (this.pos >= this.buf.length) {
			if (this.done)
				return null;
			await this.fetch(Math.min(1000, Math.max(1, want)));
		}
		return this.buf[this.pos++];
	}

	/* Moves past every upstream key <= upKey. */
	skipTo(upKey) {
		while (this.pos < this.buf.length && this.buf[this.pos].upKey <= upKey)
			this.pos++;
		if (this.pos >= this.buf.length && upKey > this.after)
			this.after = upKey;
	}

	/* One s3rver page of at most max keys after this.after. */
	async fetch(max) {
		const q = [['list-type', '2'], ['max-keys', String(max)]];
		if (this.upPrefix)
			q.push(['prefix', this.upPrefix]);
		if (this.after)
			q.push(['start-after', this.after]);
		q.sort((a, b) => (a[0] < b[0] ? -1 : 1));
		const path = this.bucketPath + '?' +
			q.map(([n, v]) => `${n}=${uriEncode(Buffer.from(v, 'utf8'), true)}`).join('&');
		const up = await upstreamFor(this.ctx, 'GET', path, { Host: upstreamHost() }, EMPTY);
		const body = await readBody(up);
		if (up.statusCode !== 200)
			throw new UpstreamAnswer(up, body);
		const xml = body.toString('utf8');
		this.buf = [];
		this.pos = 0;
		let last = this.after;
		for (let at = 0; ;) {
			const open = xml.indexOf('<Contents>', at);
			const close = open < 0 ? -1 : xml.indexOf('</Contents>', open);
			if (close < 0)
				break;
			const c = xml.slice(open + 10, close);
			at = close + 11;
			const upKey = xmlUnescape(xmlElement(c, 'Key') || '');
			if (upKey <= last)
				throw new S3Error(500, 'InternalError',
					`s3front: s3rver listed ${JSON.stringify(upKey)} after ${JSON.stringify(last)}; its paging would lose keys`);
			last = upKey;
			const key = decodeKey(upKey);
			if (!key.startsWith(this.prefix))
				continue;
			this.buf.push({
				upKey, key, kb: Buffer.from(key, 'utf8'),
				lastModified: xmlUnescape(xmlElement(c, 'LastModified') || ''),
				etag: xmlUnescape(xmlElement(c, 'ETag') || ''),
				size: xmlUnescape(xmlElement(c, 'Size') || '0'),
			});
		}
		this.done = xmlElement(xml, 'IsTruncated') !== 'true' || last === this.after;
		this.after = last;
	}
}

/* One page of the listing, cut the way S3 cuts it: the items (keys, and
 * common prefixes when delimiter is not empty) that sort after `after` (a
 * real key or common prefix, or null), at most maxKeys of them.  Resolves
 * to {contents, prefixes, truncated, last}; reads only as much from s3rver
 * as the page needs (plus one key to know whether it is truncated). */
async function listPage(ctx, bucket, prefix, delimiter, after, maxKeys) {
	const page = { contents: [], prefixes: [], truncated: false, last: null };
	const afterBytes = after === null ? null : Buffer.from(after, 'utf8');
	let start = after === null ? '' : encodeKey(after);
	if (after !== null && delimiter && after.startsWith(prefix)) {
		/* `after` is a common prefix or inside one (C): every key that
		 * starts with C rolls up into C, which is not after `after` */
		const at = after.indexOf(delimiter, prefix.length);
		if (at >= 0)
			start = pastPrefix(after.slice(0, at + delimiter.length));
	}
	const cur = new UpstreamCursor(ctx, bucket, prefix, start);
	if (maxKeys === 0) {
		await cur.fetch(0);   /* NoSuchBucket still applies */
		return page;
	}
	let count = 0, lastPrefix = null;
	for (;;) {
		const e = await cur.next(maxKeys + 1 - count);
		if (!e)
			break;
		let cp = null;
		if (delimiter) {
			const at = e.key.indexOf(delimiter, prefix.length);
			if (at >= 0)
				cp = e.key.slice(0, at + delimiter.length);
		}
		if (cp !== null && (cp === lastPrefix ||
		    (afterBytes && Buffer.compare(Buffer.from(cp, 'utf8'), afterBytes) <= 0))) {
			/* rolled up already, or not after `after`: skip what it covers */
			lastPrefix = cp;
			cur.skipTo(pastPrefix(cp));
			continue;
		}
		if (count >= maxKeys) {
			page.truncated = true;
			break;
		}
		count++;
		if (cp !== null) {
			page.prefixes.push(cp);
			page.last = cp;
			lastPrefix = cp;
			cur.skipTo(pastPrefix(cp));
		} else {
			page.contents.push(e);
			page.last = e.key;
		}
	}
	return page;
}

/* Continuation tokens: base64 of the UTF-8 of the last item returned (a
 * key or a common prefix).  readToken gives that item back, or null when
 * the token is not one of ours. */
const makeToken = (page) => Buffer.from(page.last, 'utf8').toString('base64');

function readToken(token) {
	const raw = Buffer.from(token, 'base64');
	const text = raw.toString('utf8');
	if (token === '' || raw.toString('base64') !== token ||
	    Buffer.from(text, 'utf8').toString('base64') !== token)
		return null;
	return text;
}

/* Answers ListObjectsV2 (v2) or ListObjects (V1) from s3rver's listing of
 * the upstream prefix (see the file comment). */
async function listObjects(ctx, v2) {
	const q = new Map(ctx.query.map((p) => [p.name, p.value]));
	const bucket = ctx.entry.bucket;
	const prefix = q.get('prefix') || '';
	const delimiter = q.get('delimiter') || '';
	const encoding = q.get('encoding-type');
	if (encoding !== undefined && encoding !== 'url')
		throw new S3Error(400, 'InvalidArgument', 'Invalid Encoding Method specified in Request',
			[['ArgumentName', 'encoding-type'], ['ArgumentValue', encoding]]);
	let maxKeys = 1000;
	if (q.has('max-keys')) {
		const m = q.get('max-keys');
		if (!/^-?\d+$/.test(m) || Number(m) > 2147483647)
			throw new S3Error(400, 'InvalidArgument', 'Provided max-keys not an integer or within integer range',
				[['ArgumentName', 'max-keys'], ['ArgumentValue', m]]);
		if (Number(m) < 0)
			throw new S3Error(400, 'InvalidArgument', 'Argument maxKeys must be an integer between 0 and 2147483647',
				[['ArgumentName', 'maxKeys'], ['ArgumentValue', m]]);
		maxKeys = Math.min(Number(m), 1000);
	}
	let after = null, startAfter, token, marker;
	if (v2) {
		startAfter = q.get('start-after');
		token = q.get('continuation-token');
		if (token !== undefined) {
			after = readToken(token);
			if (after === null)
				throw new S3Error(400, 'InvalidArgument', 'The continuation token provided is incorrect',
					[['ArgumentName', 'continuation-token']]);
		} else if (startAfter) {
			after = startAfter;
		}
	} else {
		marker = q.get('marker') || '';
		if (marker)
			after = marker;
	}

	const page = await listPage(ctx, bucket, prefix, delimiter, after, maxKeys);

	const url = encoding === 'url';
	const t = (s) => (url ? uriEncode(Buffer.from(s, 'utf8'), false) : xmlText(s));
	const owner = !v2 || q.get('fetch-owner') === 'true';
	const x = ['<?xml version="1.0" encoding="UTF-8"?>\n',
		`<ListBucketResult xmlns="${S3_NS}"><Name>${xmlText(bucket)}</Name><Prefix>${t(prefix)}</Prefix>`];
	if (v2) {
		if (startAfter)
			x.push(`<StartAfter>${t(startAfter)}</StartAfter>`);
		if (token !== undefined)
			x.push(`<ContinuationToken>${xmlText(token)}</ContinuationToken>`);
		if (page.truncated)
			x.push(`<NextContinuationToken>${makeToken(page)}</NextContinuationToken>`);
		x.push(`<KeyCount>${page.contents.length + page.prefixes.length}</KeyCount>`);
	} else {
		x.push(`<Marker>${t(marker)}</Marker>`);
		if (page.truncated && delimiter)
			x.push(`<NextMarker>${t(page.last)}</NextMarker>`);
	}
	x.push(`<MaxKeys>${maxKeys}</MaxKeys>`);
	if (delimiter)
		x.push(`<Delimiter>${t(delimiter)}</Delimiter>`);
	if (url)
		x.push('<EncodingType>url</EncodingType>');
	x.push(`<IsTruncated>${page.truncated}</IsTruncated>`);
	for (const c of page.contents)
		x.push(`<Contents><Key>${t(c.key)}</Key><LastModified>${xmlText(c.lastModified)}</LastModified>` +
			`<ETag>${xmlText(c.etag)}</ETag><Size>${xmlText(c.size)}</Size>` +
			(owner ? OWNER_XML : '') + '<StorageClass>STANDARD</StorageClass></Contents>');
	for (const p of page.prefixes)
		x.push(`<CommonPrefixes><Prefix>${t(p)}</Prefix></CommonPrefixes>`);
	x.push('</ListBucketResult>');
	return xmlAnswer(ctx, 200, x.join(''));
}

/* ---- DeleteObjects ------------------------------------------------------ */

/* The text of an element's content: entities decoded, CDATA sections
 * taken literally; null when a CDATA section is not closed. */
function xmlContent(s) {
	let out = '';
	let at = 0;
	for (;;) {
		const open = s.indexOf('<![CDATA[', at);
		if (open < 0)
			return out + xmlUnescape(s.slice(at));
		const close = s.indexOf(']]>', open + 9);
		if (close < 0)
			return null;
		out += xmlUnescape(s.slice(at, open)) + s.slice(open + 9, close);
		at = close + 3;
	}
}

/* Parses a <Delete> request body: {quiet, objects: [{key, versionId}]} or
 * {error} (the reason it is MalformedXML). */
function parseDeleteBody(body) {
	const xml = body.toString('utf8');
	if (!/^\s*(<\?xml[^>]*\?>\s*)?<(\w+:)?Delete[\s>]/.test(xml) || !/<\/(\w+:)?Delete>\s*$/.test(xml))
		return { error: 'the root element is not <Delete>' };
	const quiet = /<(\w+:)?Quiet>\s*true\s*<\/(\w+:)?Quiet>/.test(xml);
	const objects = [];
	for (const m of xml.matchAll(/<(?:\w+:)?Object>([\s\S]*?)<\/(?:\w+:)?Object>/g)) {
		const k = /<(?:\w+:)?Key>([\s\S]*?)<\/(?:\w+:)?Key>/.exec(m[1]);
		if (!k)
			return { error: 'an <Object> without <Key>' };
		const key = xmlContent(k[1]);
		if (key === null)
			return { error: 'an unterminated CDATA section' };
		const v = /<(?:\w+:)?VersionId>([\s\S]*?)<\/(?:\w+:)?VersionId>/.exec(m[1]);
		objects.push({ key, versionId: v ? xmlUnescape(v[1]) : undefined });
	}
	if (objects.length === 0)
		return { error: 'no <Object>' };
	if (objects.length > 1000)
		return { error: `${objects.length} objects, at most 1000` };
	return { quiet, objects };
}

/* The error code and message of an upstream error body (for DeleteObjects'
 * <Error> elements). */
function upstreamErrorOf(status, body) {
	const xml = body.toString('utf8');
	return {
		code: xmlUnescape(xmlElement(xml, 'Code') || '') || (status >= 500 ? 'InternalError' : `Http${status}`),
		message: xmlUnescape(xmlElement(xml, 'Message') || '') || `s3rver answered ${status}`,
	};
}

/* Runs fn() holding the write locks of every name in `names`, taken in
 * sorted order (a fixed order, so holders of several locks cannot deadlock;
 * see withKeyLock). */
function withKeyLocks(names, fn) {
	const sorted = [...new Set(names)].sort();
	return sorted.reduceRight((inner, name) => () => withKeyLock(name, inner), fn)();
}

const DELETE_CHUNK = 25;

/* Deletes real keys on s3rver, DELETE_CHUNK at a time: for each chunk the
 * keys' write locks, then the tree lock once for the whole chunk (one
 * exclusive turn per chunk rather than per key keeps a big batch from
 * queueing behind every other client 1000 times).  Returns a Map key ->
 * null when it is gone (absent already counts) or {code, message}. */
async function deleteKeys(ctx, bucket, keys) {
	const results = new Map();
	const todo = [];
	for (const key of new Set(keys)) {
		if (key === '')
			results.set(key, { code: 'UserKeyMustBeSpecified', message: 'The request was missing a required key.' });
		else if (Buffer.byteLength(key, 'utf8') > KEY_MAX_BYTES)
			results.set(key, null);   /* cannot exist */
		else
			todo.push(key);
	}
	for (let i = 0; i < todo.length; i += DELETE_CHUNK) {
		const chunk = todo.slice(i, i + DELETE_CHUNK);
		await withKeyLocks(chunk.map((k) => `${bucket}/${k}`), async () => {
			await treeAcquire(true);
			try {
				for (const key of chunk)
					results.set(key, await deleteLocked(ctx, bucket, key));
			} finally {
				treeRelease(true);
			}
		});
	}
	return results;
}

/* One DeleteObject to s3rver, the locks held: null or {code, message}. */
async function deleteLocked(ctx, bucket, key) {
	let up;
	try {
		up = await upstreamFor(ctx, 'DELETE', upstreamObjectPath(bucket, key),
			{ Host: upstreamHost(), 'Content-Length': '0' }, EMPTY, true);
	} catch (err) {
		return { code: 'InternalError', message: `s3front: upstream ${cfg.upstream} unreachable: ${err.message}` };
	}
	const body = await readBody(up);
	if (up.statusCode < 300 || up.statusCode === 404)
		return null;
	return upstreamErrorOf(up.statusCode, body);
}

/* Answers DeleteObjects (see the file comment). */
async function deleteObjects(ctx) {
	const parsed = ctx.deleteRequest;
	if (parsed.error)
		throw new S3Error(400, 'MalformedXML',
			'The XML you provided was not well-formed or did not validate against our published schema');
	const results = await deleteKeys(ctx, ctx.entry.bucket, parsed.objects.map((o) => o.key));
	const x = ['<?xml version="1.0" encoding="UTF-8"?>\n', `<DeleteResult xmlns="${S3_NS}">`];
	for (const o of parsed.objects) {
		const e = results.get(o.key);
		const version = o.versionId !== undefined ? `<VersionId>${xmlText(o.versionId)}</VersionId>` : '';
		if (!e) {
			if (!parsed.quiet)
				x.push(`<Deleted><Key>${xmlText(o.key)}</Key>${version}</Deleted>`);
		} else {
			x.push(`<Error><Key>${xmlText(o.key)}</Key>${version}<Code>${xmlText(e.code)}</Code>` +
				`<Message>${xmlText(e.message)}</Message></Error>`);
		}
	}
	x.push('</DeleteResult>');
	return xmlAnswer(ctx, 200, x.join(''));
}

/* ---- Range --------------------------------------------------------------- */

/* The Range header of a GET/HEAD as {first, last} (last null: to the end)
 * or {suffix}, or null when absent, unparsable, several ranges, or last
 * before first: then S3 ignores it and answers the whole object. */
function parseRange(v) {
	if (v === undefined)
		return null;
	const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/.exec(v);
	if (!m || (m[1] === '' && m[2] === ''))
		return null;
	if (m[1] === '')
		return { suffix: Number(m[2]) };
	const first = Number(m[1]), last = m[2] === '' ? null : Number(m[2]);
	if (last !== null && last < first)
		return null;
	return { first, last };
}

/* The answer to a ranged GET/HEAD from s3rver's full answer `up` (status
 * 200, Content-Length = size): 206 and the cut, or throws 416. */
async function rangeAnswer(ctx, up) {
	const size = Number(up.headers['content-length']);
	const r = ctx.range;
	let first, last;
	if (r.suffix !== undefined) {
		first = Math.max(0, size - r.suffix);
		last = size - 1;
		if (r.suffix === 0 || size === 0)
			first = size;   /* unsatisfiable */
	} else {
		first = r.first;
		last = r.last === null ? size - 1 : Math.min(r.last, size - 1);
	}
	if (!Number.isFinite(size) || first >= size) {
		await drain(up);
		throw new S3Error(416, 'InvalidRange', 'The requested range is not satisfiable',
			[['RangeRequested', hget(ctx.headers, 'range')], ['ActualObjectSize', String(size)]],
			{ 'Content-Range': `bytes */${size}` });
	}
	return {
		status: 206, stream: up, cut: [first, last],
		headers: replaceHeaders(clientHeaders(up.rawHeaders), ['content-length', 'content-range'],
			['Content-Length', String(last - first + 1), 'Content-Range', `bytes ${first}-${last}/${size}`]),
	};
}

/* ---- forwarded requests ---------------------------------------------- */

const KEY_ANSWERS = new Set(['CreateMultipartUpload', 'CompleteMultipartUpload']);

/* Forwards the request and adapts s3rver's answer: ranges cut, upstream
 * keys in error bodies and multipart answers turned back into real keys. */
async function forwardAndAnswer(ctx) {
	const up = await forward(ctx);
	const cmd = ctx.entry.command;
	if (ctx.range && up.statusCode === 200)
		return rangeAnswer(ctx, up);
	const isError = up.statusCode >= 400 && ctx.method !== 'HEAD';
	if (!isError && !(KEY_ANSWERS.has(cmd) && up.statusCode === 200))
		return { status: up.statusCode, headers: clientHeaders(up.rawHeaders), stream: up };
	let xml = (await readBody(up)).toString('utf8');
	const realKey = cmd === 'CopyObject' && ctx.copySourceKey !== undefined &&
		up.statusCode === 404 ? ctx.copySourceKey : ctx.entry.key;
	if (xml.includes('<Key>'))
		xml = xml.replace(/<Key>[\s\S]*?<\/Key>/, () => `<Key>${xmlText(realKey)}</Key>`);
	if (cmd === 'CompleteMultipartUpload' && xml.includes('<Location>')) {
		const host = hget(ctx.headers, 'host') || '';
		const loc = `http://${host}/${ctx.entry.bucket}/${uriEncode(Buffer.from(ctx.entry.key, 'utf8'), false)}`;
		xml = xml.replace(/<Location>[\s\S]*?<\/Location>/, () => `<Location>${xmlText(loc)}</Location>`);
	}
	return bufferedAnswer(up, Buffer.from(xml, 'utf8'));
}

/* Carries out the request (step 7): by the front for the operations
 * s3rver gets wrong, else forwarded.  Resolves with an answer; throws
 * S3Error, UpstreamAnswer, or a connection error. */
function carryOut(ctx) {
	switch (ctx.entry.command) {
	case 'ListObjectsV2': return listObjects(ctx, true);
	case 'ListObjects': return listObjects(ctx, false);
	case 'DeleteObjects': return deleteObjects(ctx);
	case 'PostObject':
		throw new S3Error(501, 'NotImplemented', 'A header you provided implies functionality that is not implemented (s3front does not map keys inside POST forms)');
	default: return forwardAndAnswer(ctx);
	}
}

/* Writes an answer to the client; resolves when the response is closed. */
function sendAnswer(ctx, a) {
	const res = ctx.res;
	res.writeHead(a.status, a.headers);
	if (a.body !== undefined) {
		res.end(ctx.method === 'HEAD' ? undefined : a.body);
	} else if (a.cut) {
		const [first, last] = a.cut;
		let pos = 0;
		a.stream.on('data', (chunk) => {
			const from = Math.max(first - pos, 0), to = Math.min(last + 1 - pos, chunk.length);
			pos += chunk.length;
			if (to > from && !res.write(chunk.subarray(from, to))) {
				a.stream.pause();
				res.once('drain', () => a.stream.resume());
			}
		});
		a.stream.on('end', () => res.end());
		a.stream.on('error', () => res.destroy());
	} else {
		a.stream.pipe(res);
		a.stream.on('error', () => res.destroy());
	}
	return new Promise((resolve) => res.on('close', resolve));
}

/* ---- the S3 request handler ------------------------------------------- */

async function handleS3(req, res) {
	const rawUrl = req.url;
	const qmark = rawUrl.indexOf('?');
	const rawPath = qmark < 0 ? rawUrl : rawUrl.slice(0, qmark);
	const rawQuery = qmark < 0 ? '' : rawUrl.slice(qmark + 1);
	const ctx = {
		req, res, t0: performance.now(), id: requestId(),
		hostId: crypto.randomBytes(24).toString('base64'),
		method: req.method, headers: headerMap(req.rawHeaders),
		query: parseQuery(rawQuery), body: null, logged: false,
	};
	ctx.canonicalPath = uriEncode(pctDecode(rawPath, false), false);
	const qmap = new Map(ctx.query.map((p) => [p.name, p.value]));

	/* bucket and key, path style */
	const decodedPath = pctDecode(rawPath, false).toString('utf8');
	const rest = decodedPath.replace(/^\//, '');
	const slash = rest.indexOf('/');
	const bucket = slash < 0 ? rest : rest.slice(0, slash);
	let key = slash < 0 || slash === rest.length - 1 ? null : rest.slice(slash + 1);
	const command = classify(req.method, bucket, key, qmap, ctx.headers);
	/* s3rver sees the upstream key; bucket-level requests go as they came */
	ctx.upstreamPath = key === null ? ctx.canonicalPath : upstreamObjectPath(bucket, key);
	const objectKey = key;
	if (key === null && /^List/.test(command))
		key = qmap.get('prefix') || '';
	ctx.entry = {
		seq: ++logSeq, time: new Date().toISOString(), method: req.method,
		path: rawPath, query: rawQuery, command, bucket, key: key === null ? '' : key,
		status: undefined, fault: null, error: null,
	};
	res.on('close', () => finishEntry(ctx));

	try {
		ctx.body = await readBody(req);
	} catch (err) {
		ctx.entry.error = 'ClientAborted';
		return;
	}
	ctx.entry.bytes_in = ctx.body.length;
	if (command === 'DeleteObjects') {
		ctx.deleteRequest = parseDeleteBody(ctx.body);
		ctx.entry.keys = (ctx.deleteRequest.objects || []).map((o) => o.key);
	}
	if ((command === 'GetObject' || command === 'HeadObject') && ctx.headers.has('range')) {
		ctx.rangeByFront = true;
		ctx.range = parseRange(hget(ctx.headers, 'range'));
	}

	try {
		authenticate(ctx);
		checkMetadata(ctx);
		checkContentMd5(ctx);
		if (objectKey !== null)
			checkKeyLength(ctx, objectKey);
	} catch (err) {
		if (err instanceof S3Error)
			return sendError(ctx, err);
		throw err;
	}

	const write = ['PutObject', 'CopyObject', 'DeleteObject'].includes(command);
	if (write)
		return withKeyLock(`${bucket}/${key}`, () => serve(ctx));
	return serve(ctx);
}

/* Steps 5-8 of the file comment for an authenticated request. */
async function serve(ctx) {
	const req = ctx.req;
	try {
		await checkPreconditions(ctx);
	} catch (err) {
		if (err instanceof S3Error)
			return sendError(ctx, err);
		return sendError(ctx, new S3Error(500, 'InternalError',
			`s3front: upstream ${cfg.upstream} unreachable: ${err.message}`));
	}

	const rule = pickFault(ctx);
	const s = rule ? rule.spec : null;
	if (s) {
		ctx.entry.fault = describeFault(s);
		ctx.entry.fault_rule = rule.id;
		if (s.delay_ms)
			await sleep(s.delay_ms);
		if (!s.after_forward) {
			if (s.reset) {
				ctx.entry.status = 0;
				req.socket.destroy();
				return;
			}
			if (s.status !== undefined)
				return sendError(ctx, faultError(s));
		}
	}

	let answer = null, failure = null;
	try {
		answer = await carryOut(ctx);
	} catch (err) {
		if (err instanceof UpstreamAnswer)
			answer = err.answer;
		else if (err instanceof S3Error)
			failure = err;
		else
			failure = new S3Error(500, 'InternalError',
				`s3front: upstream ${cfg.upstream} unreachable: ${err.message}`);
	}
	if (s && s.after_forward) {
		if (answer && answer.stream)
			await drain(answer.stream);
		if (s.reset) {
			ctx.entry.status = 0;
			req.socket.destroy();
			return;
		}
		return sendError(ctx, faultError(s));
	}
	if (failure)
		return sendError(ctx, failure);
	await sendAnswer(ctx, answer);
}

/* ---- control API ------------------------------------------------------ */

function sendJson(res, status, obj) {
	const body = JSON.stringify(obj);
	res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
	res.end(body);
}

async function handleControl(req, res) {
	const path = req.url.replace(/\?.*$/, '').replace(/\/+$/, '');
	const body = await readBody(req);
	const route = `${req.method} ${path}`;
	let m;
	switch (route) {
	case 'GET /__control/health':
		return sendJson(res, 200, {
			ok: true, port: server.address().port, upstream: cfg.upstream, region: cfg.region,
			rules: rules.length, log_entries: logEntries.length,
		});
	case 'GET /__control/log':
		return sendJson(res, 200, logEntries);
	case 'DELETE /__control/log':
		logEntries = [];
		return sendJson(res, 200, { ok: true });
	case 'GET /__control/faults':
		return sendJson(res, 200, rules.map((r) => ({ id: r.id, matched: r.matched, fired: r.fired, rule: r.spec })));
	case 'DELETE /__control/faults': {
		const n = rules.length;
		rules = [];
		return sendJson(res, 200, { ok: true, cleared: n });
	}
	case 'POST /__control/faults': {
		let spec;
		try {
			spec = JSON.parse(body.toString('utf8'));
		} catch (err) {
			return sendJson(res, 400, { ok: false, error: `invalid JSON: ${err.message}` });
		}
		const list = Array.isArray(spec) ? spec : [spec];
		for (const r of list) {
			const e = validateRule(r);
			if (e)
				return sendJson(res, 400, { ok: false, error: e });
		}
		const ids = list.map(addRule);
		return sendJson(res, 200, { ok: true, id: ids[0], ids });
	}
	default:
		if (req.method === 'DELETE' && (m = /^\/__control\/faults\/(\d+)$/.exec(path))) {
			const before = rules.length;
			rules = rules.filter((r) => r.id !== Number(m[1]));
			return sendJson(res, before === rules.length ? 404 : 200, { ok: before !== rules.length });
		}
		return sendJson(res, 404, { ok: false, error: `no control route ${route}` });
	}
}

/* ---- server ----------------------------------------------------------- */

const server = http.createServer((req, res) => {
	const isControl = req.url === '/__control' || req.url.startsWith('/__control/');
	const p = isControl ? handleControl(req, res) : handleS3(req, res);
	p.catch((err) => {
		process.stderr.write(`s3front: internal error: ${err && err.stack}\n`);
		if (!res.headersSent) {
			res.writeHead(500, { 'Content-Type': 'text/plain' });
			res.end(`s3front internal error: ${err && err.message}\n`);
		} else {
			res.destroy();
		}
	});
});
server.keepAliveTimeout = 60000;
server.headersTimeout = 65000;

server.on('clientError', (err, socket) => {
	if (socket.writable)
		socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
	else
		socket.destroy();
});

server.listen(cfg.port, cfg.host, () => {
	const port = server.address().port;
	if (cfg.portFile) {
		fs.writeFileSync(cfg.portFile + '.tmp', `${port}\n`);
		fs.renameSync(cfg.portFile + '.tmp', cfg.portFile);
	}
	if (!cfg.quiet)
		process.stdout.write(`s3front listening on http://${cfg.host}:${port} upstream ${cfg.upstream}\n`);
});

for (const sig of ['SIGTERM', 'SIGINT'])
	process.on(sig, () => {
		server.close();
		process.exit(0);
	});
