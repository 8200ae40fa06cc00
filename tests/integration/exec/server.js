// An HTTP server for preforkd's [exec] on Node.js: server.listen({fd: 3}) takes
// the slot's socket, `systemd-notify --ready` reports readiness (Node has no
// sd_notify of its own), and the stop signal stops accepting at once while
// keep-alive connections get `Connection: close` on their next response; those
// still silent a second later are closed. net.Server's close, not http.Server's:
// the latter also closes idle connections at once, under a client that may be
// sending its next request.
'use strict';
const http = require('http');
const net = require('net');
const { execFile } = require('child_process');

const body = 'hello from preforkd\n';
const ids = { 'X-Slot': process.env.PREFORKD_SLOT, 'X-Generation': process.env.PREFORKD_GENERATION,
              'X-Pid': String(process.pid) };
let stopping = false;

const server = http.createServer((req, res) => {
  const text = req.url === '/hello.txt' ? body : 'ok\n';
  const headers = { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(text), ...ids };
  if (stopping) headers.Connection = 'close';
  res.writeHead(200, headers);
  res.end(text);
});
server.keepAliveTimeout = 30000;

server.listen({ fd: 3 }, () => {
  execFile('systemd-notify', ['--ready', '--status=serving on fd 3'], (err) => {
    if (err) console.error(`systemd-notify: ${err.message}`);
  });
});

process.on('SIGUSR1', () => console.error('SIGUSR1: reopening logs'));
process.on('SIGTERM', () => {
  if (stopping) return;
  stopping = true;
  net.Server.prototype.close.call(server, () => process.exit(0));
  setTimeout(() => server.closeIdleConnections(), 1000);
  setTimeout(() => process.exit(0), 10000).unref();
});
