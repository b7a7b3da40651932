#!/usr/bin/env node
/*
 * webhook.js — a webhook receiver for the tests of the webhook plugin
 * (plugins/webhook): it records every POST it receives and answers as
 * the test asks.  Node core only.
 *
 *   node webhook.js [--host 127.0.0.1] [--port 0] [--port-file F] --log FILE
 *
 * Every request to a path outside /__control is appended to FILE as one
 * JSON line: {"time", "method", "path", "contentType", "userAgent",
 * "status" (what it answered), "body" (the parsed JSON body, or the raw
 * text under "raw" when it is not JSON)}.
 *
 * Control API (no auth; 127.0.0.1 only):
 *   GET    /__control/health   {ok, port, received}
 *   POST   /__control/respond  {"status": 500, "count": 2}: answer the next
 *                              `count` requests with `status` (then 200 again)
 *   POST   /__control/delay    {"ms": 3000}: wait that long before answering
 *                              every request (0: no delay)
 *   DELETE /__control/log      empties FILE and resets the counters
 *
 * The port is written to --port-file (atomically) once listening.
 */
'use strict';

const fs = require('fs');
const http = require('http');

function parseArgs(argv) {
	const cfg = { host: '127.0.0.1', port: 0, portFile: null, log: null };
	for (let i = 2; i < argv.length; i++) {
		const val = () => {
			if (i + 1 >= argv.length) throw new Error(`${argv[i]} needs a value`);
			return argv[++i];
		};
		switch (argv[i]) {
		case '--host': cfg.host = val(); break;
		case '--port': cfg.port = Number(val()); break;
		case '--port-file': cfg.portFile = val(); break;
		case '--log': cfg.log = val(); break;
		default: throw new Error(`unknown argument ${argv[i]}`);
		}
	}
	if (!cfg.log) throw new Error('--log FILE is required');
	return cfg;
}

let cfg;
try {
	cfg = parseArgs(process.argv);
} catch (e) {
	process.stderr.write(`webhook.js: ${e.message}\n` +
		'usage: node webhook.js [--host H] [--port N] [--port-file F] --log FILE\n');
	process.exit(2);
}

const state = { received: 0, failNext: 0, failStatus: 500, delayMs: 0 };

function readBody(req) {
	return new Promise((resolve, reject) => {
		const chunks = [];
		req.on('data', (c) => chunks.push(c));
		req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
		req.on('error', reject);
	});
}

function answer(res, status, obj) {
	const text = JSON.stringify(obj) + '\n';
	res.writeHead(status, { 'Content-Type': 'application/json',
		'Content-Length': Buffer.byteLength(text) });
	res.end(text);
}

function parseJson(text) {
	try {
		return { ok: true, value: JSON.parse(text) };
	} catch (e) {
		return { ok: false };
	}
}

async function control(req, res, path) {
	const body = await readBody(req);
	const json = parseJson(body || '{}');
	if (req.method === 'GET' && path === '/__control/health')
		return answer(res, 200, { ok: true, port: server.address().port, received: state.received });
	if (req.method === 'POST' && path === '/__control/respond' && json.ok) {
		state.failStatus = Number(json.value.status) || 500;
		state.failNext = Number(json.value.count) || 0;
		return answer(res, 200, { ok: true });
	}
	if (req.method === 'POST' && path === '/__control/delay' && json.ok) {
		state.delayMs = Number(json.value.ms) || 0;
		return answer(res, 200, { ok: true });
	}
	if (req.method === 'DELETE' && path === '/__control/log') {
		fs.writeFileSync(cfg.log, '');
		state.received = 0;
		state.failNext = 0;
		state.delayMs = 0;
		return answer(res, 200, { ok: true });
	}
	return answer(res, 404, { error: `no control ${req.method} ${path}` });
}

async function receive(req, res, path) {
	const body = await readBody(req);
	if (state.delayMs > 0)
		await new Promise((r) => setTimeout(r, state.delayMs));
	let status = 200;
	if (state.failNext > 0) {
		state.failNext--;
		status = state.failStatus;
	}
	state.received++;
	const json = parseJson(body);
	const line = {
		time: new Date().toISOString(), method: req.method, path,
		contentType: req.headers['content-type'] || null,
		userAgent: req.headers['user-agent'] || null, status,
	};
	if (json.ok) line.body = json.value;
	else line.raw = body;
	fs.appendFileSync(cfg.log, JSON.stringify(line) + '\n');
	if (!res.destroyed)
		answer(res, status, { ok: status < 300 });
}

const server = http.createServer((req, res) => {
	const path = (req.url || '/').split('?')[0];
	const handler = path.startsWith('/__control/') ? control : receive;
	handler(req, res, path).catch((e) => {
		if (!res.headersSent) answer(res, 500, { error: String(e) });
	});
});

fs.writeFileSync(cfg.log, '');
server.listen(cfg.port, cfg.host, () => {
	const port = server.address().port;
	if (cfg.portFile) {
		fs.writeFileSync(cfg.portFile + '.tmp', `${port}\n`);
		fs.renameSync(cfg.portFile + '.tmp', cfg.portFile);
	}
	process.stdout.write(`webhook.js listening on http://${cfg.host}:${port}\n`);
});

function stop() {
	server.close(() => process.exit(0));
	server.closeAllConnections(); /* keep-alive clients would hold close() */
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
