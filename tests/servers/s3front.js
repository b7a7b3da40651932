#!/usr/bin/env node
/*
 * s3front.js — a strict front that the s3dbfs tests put before s3rver.
 *
 * s3rver is a good enough object store but a lax S3: it verifies no SigV4
 * signature, has no user-metadata limit and returns non-ASCII metadata bytes
 * raw.  This front listens on 127.0.0.1:PORT, checks every request the way
 * Amazon S3 does, forwards the good ones to s3rver (127.0.0.1:UPSTREAM) and
 * streams the answer back unchanged except for the metadata encoding.  It
 * also logs every request and injects faults on demand, so tests can
 * observe what the library sent and how it copes with a failing S3.
 *
 * Node core modules only (http, crypto, fs); no npm dependency.
 *
 * Request path, in order:
 *   1. /__control/...           the control API (never forwarded, never logged)
 *   2. read the whole body      (the payload hash must be checked before
 *                                anything reaches s3rver)
 *   3. authenticate             SigV4, Authorization header or presigned query
 *   4. user-metadata limit      PUT/POST carrying x-amz-meta-*
 *   5. preconditions            If-Match / If-Unmodified-Since on GET/HEAD and
 *                                conditional PutObject, which s3rver ignores
 *                                (writes to one key are serialized here)
 *   6. fault rules              may delay, answer an error, reset the socket,
 *                                or forward first and then lose the answer
 *   7. forward to s3rver        Authorization and presign parameters stripped
 *                                (s3rver accepts unsigned requests); path and
 *                                query in canonical encoding
 *   8. answer                   x-amz-meta-* values with non-ASCII bytes are
 *                                RFC 2047-encoded as =?UTF-8?B?...?=; all else
 *                                streamed unchanged (ranges, 204, 304, 412)
 *   9. log                      one JSON line per request (--log FILE) and an
 *                                in-memory copy for GET /__control/log
 *
 * Log entry: {seq, time, method, path (raw, without query), query (raw),
 * command (AWS operation name: PutObject, GetObject, HeadObject,
 * DeleteObject, DeleteObjects, ListObjectsV2, CopyObject, ...), bucket,
 * key (object key; for List* the prefix parameter), status (sent to the
 * client; 0 when the socket was reset), fault (null or "status:503",
 * "reset", "delay:200", "after_forward+status:500", ...), fault_rule (rule
 * id), error (AWS error code when the front answered itself), access_key,
 * upstream_status, bytes_in, metadata_bytes (PUT/POST), keys (DeleteObjects),
 * duration_ms}.
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
 * front decodes the source fully and forwards encodeURI() of it, which
 * decodeURI() turns back into the exact key.  ?versionId is dropped
 * (s3rver has no versions).
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
	/* extra: [[element, text], ...] placed between Message and RequestId. */
	constructor(status, code, message, extra) {
		this.status = status;
		this.code = code;
		this.message = message;
		this.extra = extra || [];
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

/* ---- forwarding ------------------------------------------------------- */

const HOP_HEADERS = new Set(['authorization', 'host', 'connection', 'keep-alive', 'expect',
	'transfer-encoding', 'content-length', 'te', 'trailer', 'upgrade', 'proxy-authorization',
	'proxy-connection']);

/* Rewrites x-amz-copy-source for s3rver's decodeURI(): see file comment. */
function fixCopySource(v) {
	const q = v.indexOf('?');
	const path = q < 0 ? v : v.slice(0, q);
	return encodeURI(pctDecode(path, false).toString('utf8'));
}

/* Sends the request to s3rver; resolves with the upstream response (not
 * yet read) or rejects on a connection error. */
function forward(ctx) {
	const headers = [];
	for (let i = 0; i + 1 < ctx.req.rawHeaders.length; i += 2) {
		const n = ctx.req.rawHeaders[i], ln = n.toLowerCase();
		let v = ctx.req.rawHeaders[i + 1];
		if (HOP_HEADERS.has(ln))
			continue;
		if (ln === 'x-amz-copy-source')
			v = fixCopySource(v);
		headers.push(n, v);
	}
	headers.push('Host', `${cfg.upstreamHost}:${cfg.upstreamPort}`);
	headers.push('Content-Length', String(ctx.body.length));
	const q = canonicalQuery(ctx.query, (n) => PRESIGN_PARAMS.has(n));
	const path = ctx.canonicalPath + (q ? '?' + q : '');
	return upstreamRequest(ctx.method, path, headers, ctx.body);
}

/* One request to s3rver; resolves with the response (body not yet read).
 * A connection error on a reused keep-alive socket is retried once. */
function upstreamRequest(method, path, headers, body, retried) {
	return new Promise((resolve, reject) => {
		const up = http.request({
			host: cfg.upstreamHost, port: cfg.upstreamPort, method, path, headers,
			agent: upstreamAgent,
		}, resolve);
		up.on('error', (err) => {
			if (up.reusedSocket && !retried &&
			    (err.code === 'ECONNRESET' || err.code === 'EPIPE'))
				resolve(upstreamRequest(method, path, headers, body, true));
			else
				reject(err);
		});
		up.end(body);
	});
}

/* Response headers of s3rver as the client gets them. */
function clientHeaders(raw) {
	const out = [];
	for (let i = 0; i + 1 < raw.length; i += 2) {
		const ln = raw[i].toLowerCase();
		if (ln === 'connection' || ln === 'keep-alive' || ln === 'transfer-encoding')
			continue;
		out.push(raw[i], ln.startsWith('x-amz-meta-') ? encodeMetaValue(raw[i + 1]) : raw[i + 1]);
	}
	return out;
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

/* ---- conditional requests that s3rver ignores ------------------------- */

/* s3rver honours only If-None-Match and If-Modified-Since on GET/HEAD.  The
 * front adds what S3 does besides: If-Match and If-Unmodified-Since on
 * GetObject/HeadObject (412 PreconditionFailed; a true If-Match overrides a
 * false If-Unmodified-Since, as RFC 7232 and S3 do), and conditional writes
 * on PutObject: If-None-Match: * (412 when the key exists) and If-Match:
 * ETAG (404 NoSuchKey when absent, 412 when the ETag differs).  The current
 * state comes from a HEAD to s3rver; every write to a key (PutObject,
 * CopyObject, DeleteObject) passes through a per-key lock in the front, so
 * a conditional PUT is atomic with respect to other requests through it. */

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
async function headUpstream(canonicalPath) {
	const res = await upstreamRequest('HEAD', canonicalPath,
		{ Host: `${cfg.upstreamHost}:${cfg.upstreamPort}` }, Buffer.alloc(0));
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
		const cur = await headUpstream(ctx.canonicalPath);
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
	const cur = await headUpstream(ctx.canonicalPath);
	if (ifNoneMatch !== undefined && cur.status === 200)
		throw new S3Error(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', [['Condition', 'If-None-Match']]);
	if (ifMatch !== undefined) {
		if (cur.status === 404)
			throw new S3Error(404, 'NoSuchKey', 'The specified key does not exist.', [['Key', ctx.entry.key]]);
		if (!etagListMatches(ifMatch, cur.etag))
			throw new S3Error(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', [['Condition', 'If-Match']]);
	}
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
		const text = ctx.body.toString('utf8');
		ctx.entry.keys = [...text.matchAll(/<Key>([\s\S]*?)<\/Key>/g)].map((m) => xmlUnescape(m[1]));
	}

	try {
		authenticate(ctx);
		checkMetadata(ctx);
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

/* Steps 5-7 of the file comment for an authenticated request. */
async function serve(ctx) {
	const req = ctx.req, res = ctx.res;
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

	let up;
	try {
		up = await forward(ctx);
	} catch (err) {
		return sendError(ctx, new S3Error(500, 'InternalError',
			`s3front: upstream ${cfg.upstream} unreachable: ${err.message}`));
	}
	ctx.entry.upstream_status = up.statusCode;
	if (s && s.after_forward) {
		await drain(up);
		if (s.reset) {
			ctx.entry.status = 0;
			req.socket.destroy();
			return;
		}
		return sendError(ctx, faultError(s));
	}
	res.writeHead(up.statusCode, clientHeaders(up.rawHeaders));
	up.pipe(res);
	up.on('error', () => res.destroy());
	await new Promise((resolve) => res.on('close', resolve));
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
