// memcached load generator for bench/apps.ts, run as its own process (inside the TAP
// namespace, or in the root namespace against 127.0.0.1):
//
//   bun bench/memc-load.ts HOST PORT [--conns 32] [--depth 4] [--ms 5000] [--keys 1000]
//                                    [--size 1024] [--preload]
//
// --preload first stores KEYS values of SIZE bytes ("set b<i> 0 0 SIZE", pipelined on
// one connection). Then CONNS connections each send DEPTH text-protocol `get b<k>`
// commands (random keys) in one write, wait for all DEPTH answers and send the next
// batch, for MS milliseconds. An answer is counted good when it is "VALUE b<k> 0 SIZE",
// SIZE bytes and "END" for the key asked; a miss (a bare "END"), any other line
// (ERROR, SERVER_ERROR ...), a connection that fails or closes, or a batch that is not
// answered within 2 s is an error (a failed connection is not reopened). Prints one JSON
// line: { gets, errors, misses, ms, getsPerS, conns, depth, size }.
import { parseArgs } from "node:util";

const { values: v, positionals } = parseArgs({
  args: process.argv.slice(2),
  options: {
    conns: { type: "string", default: "32" },
    depth: { type: "string", default: "4" },
    ms: { type: "string", default: "5000" },
    keys: { type: "string", default: "1000" },
    size: { type: "string", default: "1024" },
    preload: { type: "boolean", default: false },
  },
  allowPositionals: true,
});
const host = positionals[0] ?? "127.0.0.1";
const port = Number(positionals[1] ?? 11211);
const conns = Number(v.conns);
const depth = Number(v.depth);
const ms = Number(v.ms);
const keys = Number(v.keys);
const size = Number(v.size);

const enc = new TextEncoder();
const CRLF = 0x0d;

/** A connection with a receive buffer; `onLine`-style parsing is done by the callers. */
interface Conn {
  sock: Bun.Socket<undefined> | null;
  buf: Uint8Array;
  len: number;
  /** Keys asked and not yet answered, in order. */
  asked: number[];
  dead: boolean;
  sentAt: number;
  onData: () => void;
  /** Bytes the socket did not take yet (Bun's write takes what fits; drain says when to go on). */
  pending: Uint8Array[];
}

function put(c: Conn, b: Uint8Array): void {
  if (c.pending.length > 0) {
    c.pending.push(b);
    return;
  }
  const n = c.sock!.write(b);
  if (n < b.length) c.pending.push(b.subarray(Math.max(0, n)));
}

function flush(c: Conn): void {
  while (c.pending.length > 0) {
    const b = c.pending[0]!;
    const n = c.sock!.write(b);
    if (n < b.length) {
      c.pending[0] = b.subarray(Math.max(0, n));
      return;
    }
    c.pending.shift();
  }
}

function append(c: Conn, d: Uint8Array): void {
  if (c.len + d.length > c.buf.length) {
    const nb = new Uint8Array(Math.max(c.buf.length * 2, c.len + d.length));
    nb.set(c.buf.subarray(0, c.len));
    c.buf = nb;
  }
  c.buf.set(d, c.len);
  c.len += d.length;
}

/** Index of "\r\n" at or after `from` in c.buf[0..len), or -1. */
function crlf(c: Conn, from: number): number {
  for (let i = from; i + 1 < c.len; i++) if (c.buf[i] === CRLF && c.buf[i + 1] === 0x0a) return i;
  return -1;
}

function consume(c: Conn, n: number): void {
  c.buf.copyWithin(0, n, c.len);
  c.len -= n;
}

const latin1 = (b: Uint8Array, a: number, e: number): string => Buffer.from(b.buffer, b.byteOffset + a, e - a).toString("latin1");

async function open(onData: (c: Conn) => void): Promise<Conn> {
  const c: Conn = { sock: null, buf: new Uint8Array(1 << 16), len: 0, asked: [], dead: false, sentAt: 0, onData: () => onData(c), pending: [] };
  c.sock = await Bun.connect({
    hostname: host,
    port,
    socket: {
      data(_s, d) {
        append(c, d);
        c.onData();
      },
      drain() {
        flush(c);
      },
      close() {
        lost(c);
      },
      error() {
        lost(c);
      },
      connectError() {
        lost(c);
      },
    },
  });
  c.sock.setNoDelay(true);
  return c;
}

async function preload(): Promise<void> {
  let stored = 0;
  let bad = "";
  let done: () => void = () => {};
  const finished = new Promise<void>((r) => (done = r));
  const c = await open((c) => {
    for (;;) {
      const e = crlf(c, 0);
      if (e < 0) return;
      const line = latin1(c.buf, 0, e);
      consume(c, e + 2);
      if (line === "STORED") stored++;
      else bad ||= line;
      if (stored + (bad ? 1 : 0) >= keys || bad) return done();
    }
  });
  const value = "x".repeat(size);
  let batch = "";
  for (let i = 0; i < keys; i++) {
    batch += `set b${i} 0 0 ${size}\r\n${value}\r\n`;
    if (batch.length > 60_000 || i === keys - 1) {
      put(c, enc.encode(batch));
      batch = "";
    }
  }
  const t = setTimeout(() => done(), 10_000);
  await finished;
  clearTimeout(t);
  c.sock!.end();
  if (bad || stored < keys) {
    console.error(`memc-load: preload stored ${stored} of ${keys}${bad ? `, then '${bad}'` : ""}`);
    process.exit(1);
  }
}

let gets = 0;
let errors = 0;
let misses = 0;
let running = true;
/** False while preloading (its connection's close is no error). */
let measuring = false;

function send(c: Conn): void {
  if (!running || c.dead) return;
  let s = "";
  for (let i = 0; i < depth; i++) {
    const k = (Math.random() * keys) | 0;
    c.asked.push(k);
    s += `get b${k}\r\n`;
  }
  c.sentAt = performance.now();
  put(c, enc.encode(s));
}

/** Parses the answers in c's buffer; when the batch is all answered, sends the next. */
function onAnswers(c: Conn): void {
  for (;;) {
    if (c.asked.length === 0) break;
    const e = crlf(c, 0);
    if (e < 0) break;
    if (c.buf[0] === 0x56 /* V */) {
      // VALUE b<k> 0 SIZE\r\n<SIZE bytes>\r\nEND\r\n
      const total = e + 2 + size + 2 + 5;
      if (c.len < total) break;
      const k = c.asked.shift()!;
      const ok = latin1(c.buf, 0, e) === `VALUE b${k} 0 ${size}` && latin1(c.buf, e + 2 + size, total) === "\r\nEND\r\n";
      if (ok) {
        if (running) gets++;
      } else {
        errors++;
        fail(c);
        return;
      }
      consume(c, total);
    } else {
      const line = latin1(c.buf, 0, e);
      consume(c, e + 2);
      c.asked.shift();
      if (line === "END") misses++;
      errors++;
    }
  }
  if (c.asked.length === 0) send(c);
}

/** The peer closed or reset c while it was measured: an error (once). */
function lost(c: Conn): void {
  if (!c.dead && running && measuring) errors++;
  c.dead = true;
}

function fail(c: Conn): void {
  c.dead = true;
  c.asked = [];
  c.sock?.terminate();
}

process.on("uncaughtException", (e) => {
  console.error(`memc-load: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
process.on("unhandledRejection", (e) => {
  console.error(`memc-load: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
if (v.preload) await preload();
measuring = true;
const cs = await Promise.all(Array.from({ length: conns }, () => open(onAnswers).catch(() => null)));
for (const c of cs) if (!c) errors++;
const live = cs.filter((c): c is Conn => c !== null);
const t0 = performance.now();
for (const c of live) send(c);
const watchdog = setInterval(() => {
  const now = performance.now();
  for (const c of live) {
    if (!c.dead && c.asked.length > 0 && now - c.sentAt > 2000) {
      errors++;
      fail(c);
    }
  }
}, 250);
await new Promise((r) => setTimeout(r, ms));
running = false;
const elapsed = performance.now() - t0;
clearInterval(watchdog);
const closedEarly = live.filter((c) => c.dead).length;
for (const c of live) c.sock?.terminate();
console.log(JSON.stringify({ gets, errors, misses, closedEarly, ms: elapsed, getsPerS: (gets * 1000) / elapsed, conns, depth, size }));
process.exit(0);
