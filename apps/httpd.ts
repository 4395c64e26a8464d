// httpd: a lighttpd-like static web server, written as a C program is written against
// POSIX: one thread, one event loop over select, poll or epoll (`--event-handler`, as
// lighttpd's server.event-handler; default epoll), nonblocking sockets, speculative accept
// (accept until EAGAIN) and speculative read (a new connection is read before any wait),
// writes that may be partial (an output queue per connection; POLLOUT/EPOLLOUT is asked for
// only while that queue is not empty). Sockets come only from libc's SocketApi, so the same
// code runs on newts fast sockets, newts syscall sockets and Linux (`--sockets`).
//
//   httpd [--port 80] [--addr A] [--docroot DIR] [--event-handler select|poll|epoll]
//         [--sockets fast|syscall|linux] [--max-conns 1024] [--max-keepalive-requests 100]
//         [--idle-timeout 30] [--header-timeout 10] [--write-timeout 60] [--exit-after N]
//         [--access-log FILE] [--cache-size BYTES] [--cache-max-file BYTES] [--backlog N]
//
// HTTP/1.0 and 1.1, keep-alive (at most --max-keepalive-requests per connection), pipelining
// (requests read together are answered in order; their answers may share one write), GET and
// HEAD of files under the document root (default: www/ of this repository, whose .bin files
// are made at start-up if missing), cached in memory (LRU, --cache-size in all, files over
// --cache-max-file are streamed from disk), MIME types by extension, single byte ranges
// (206, 416), If-Modified-Since (304), index.html for directories (a directory without the
// final "/" is redirected: 301), Date/Last-Modified/Content-Length/Content-Type/Connection,
// an optional access log in common log format. The request parser is httpd/parse.ts
// (its errors: 400, 403, 405, 413, 414, 431, 501, 505, each answered and then the connection
// closed), the responses are built by httpd/response.ts.
//
// Each connection is a small state machine: open (reading requests, answering them) ->
// closing (the last answer is queued: flush it) -> linger (our side is shut down; the
// client's leftover bytes are read and dropped until its FIN, so that a close does not reset
// an answer still in flight) -> closed. Limits that keep one client from starving the others:
// a request head must be complete within --header-timeout of its first byte (or of the
// accept), so slowloris connections are cut (408); an idle keep-alive connection is closed
// after --idle-timeout; a connection whose output does not move for --write-timeout is
// reset; at most --max-conns connections: beyond it new ones are accepted and closed at once;
// a connection with more than HIGH_WATER bytes of answers queued is not read until they
// drain; each wait has a finite timeout, so the timers run.
//
// The server runs until it is killed, or with --exit-after N until it has answered N
// requests (then it finishes the answers in flight and returns its statistics as the result).
import { parseArgs } from "node:util";
import { openSockets, socketsFromArgs, type Backend } from "../libc/sockets.ts";
import { puts } from "../libc/stdio.ts";
import { EINTR } from "../libc/errno.ts";
import { formatIpv4Addr, parseIpv4Addr } from "../libc/inet.ts";
import { HANDLERS, type Handler } from "./common/poller.ts";
import { errnoOf, Server, type HttpdOptions } from "./httpd/server.ts";
import { DEFAULT_DOCROOT, makeSampleFiles } from "./httpd/site.ts";

function usage(): string {
  return "usage: httpd [--port N] [--addr A] [--docroot DIR] [--event-handler select|poll|epoll] [--sockets fast|syscall|linux] " +
    "[--max-conns N] [--max-keepalive-requests N] [--idle-timeout S] [--header-timeout S] [--write-timeout S] [--exit-after N] " +
    "[--access-log FILE] [--cache-size BYTES] [--cache-max-file BYTES] [--backlog N]";
}

/** Parses the options (after --sockets is taken out); an error message on bad ones. */
export function parseOptions(args: string[], backend: Backend): HttpdOptions | string {
  let v;
  try {
    v = parseArgs({
      args,
      options: {
        port: { type: "string" }, addr: { type: "string" }, docroot: { type: "string" }, "event-handler": { type: "string" },
        "max-conns": { type: "string" }, "max-keepalive-requests": { type: "string" }, "idle-timeout": { type: "string" },
        "header-timeout": { type: "string" }, "write-timeout": { type: "string" }, "exit-after": { type: "string" },
        "access-log": { type: "string" }, "cache-size": { type: "string" }, "cache-max-file": { type: "string" }, backlog: { type: "string" },
      },
      allowPositionals: false,
    }).values;
  } catch (e) {
    return (e as Error).message;
  }
  const num = (name: keyof typeof v, dflt: number, min: number, int = true): number | string => {
    const s = v[name];
    if (s === undefined) return dflt;
    const n = Number(s);
    if (s === "" || !Number.isFinite(n) || n < min || (int && !Number.isInteger(n))) return `--${name}: bad value '${s}'`;
    return n;
  };
  const handler = v["event-handler"] ?? "epoll";
  if (!(HANDLERS as readonly string[]).includes(handler)) return `--event-handler: expected one of ${HANDLERS.join(", ")}, got '${handler}'`;
  // The Linux backend listens on the host itself: loopback unless told otherwise.
  const addrText = v.addr ?? (backend === "linux" ? "127.0.0.1" : "0.0.0.0");
  const addr = parseIpv4Addr(addrText);
  if (addr === null) return `--addr: bad address '${addrText}'`;
  const vals = {
    port: num("port", 80, 0), maxConns: num("max-conns", 1024, 1), maxKeepalive: num("max-keepalive-requests", 100, 1),
    idle: num("idle-timeout", 30, 0.001, false), header: num("header-timeout", 10, 0.001, false), write: num("write-timeout", 60, 0.001, false),
    exitAfter: num("exit-after", 0, 0), cacheSize: num("cache-size", 64 << 20, 0), cacheMaxFile: num("cache-max-file", 4 << 20, 0),
    backlog: num("backlog", 1024, 1),
  };
  for (const x of Object.values(vals)) if (typeof x === "string") return x;
  const n = vals as { [K in keyof typeof vals]: number };
  if (n.port > 65535) return `--port: bad value '${n.port}'`;
  return {
    port: n.port, addr, docroot: v.docroot ?? DEFAULT_DOCROOT, handler: handler as Handler, maxConns: n.maxConns, maxKeepalive: n.maxKeepalive,
    idleMs: n.idle * 1000, headerMs: n.header * 1000, writeMs: n.write * 1000, exitAfter: n.exitAfter, accessLog: v["access-log"] ?? null,
    cacheSize: n.cacheSize, cacheMaxFile: n.cacheMaxFile, backlog: n.backlog,
  };
}

export function main(argv: string[]) {
  const args = argv.slice(1);
  let backend: Backend;
  try {
    backend = socketsFromArgs(args);
  } catch (e) {
    puts((e as Error).message);
    return { status: 2, result: { error: (e as Error).message } };
  }
  const o = parseOptions(args, backend);
  if (typeof o === "string") {
    puts(o);
    puts(usage());
    return { status: 2, result: { error: o } };
  }
  let srv: Server;
  let at: { addr: number; port: number };
  const api = openSockets(backend);
  try {
    if (o.docroot === DEFAULT_DOCROOT) {
      try {
        makeSampleFiles(o.docroot);
      } catch (e) {
        puts(`sample files not made: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    srv = new Server(api, o);
    // A stack server restarting during set-up interrupts the call (EINTR): set up again.
    for (let tries = 1; ; tries++) {
      try {
        at = srv.listen();
        break;
      } catch (e) {
        if (errnoOf(e) !== EINTR || tries >= 5) throw e;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
      }
    }
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    puts(msg);
    return { status: 1, result: { error: msg } };
  }
  puts(
    `listening on ${formatIpv4Addr(at.addr)}:${at.port}, docroot ${srv.root}, event handler ${o.handler}, sockets ${backend} (${api.backend})` +
      (o.exitAfter > 0 ? `, exit after ${o.exitAfter} requests` : ""),
  );
  const t0 = performance.now();
  srv.run();
  const s = srv.snapshot();
  const result = { ...s, ms: performance.now() - t0, port: at.port, handler: o.handler, backend, sockets: api.stats() };
  puts(`${s.requests} requests, ${s.bytesOut} bytes out, ${s.connections.accepted} connections; exiting`);
  return { status: 0, result };
}
