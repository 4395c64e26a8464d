// memcached: the cache server, written as a C program is written against POSIX — one
// event loop (epoll by default; poll or select with --event-handler), nonblocking sockets,
// speculative accept (until EAGAIN) and speculative read (a new connection is read at
// once; a readable one until EAGAIN), replies queued per connection and written at once,
// with POLLOUT asked for only while a queue is not empty. The data path uses the C-style
// calls (tryAccept, tryRecv, trySend: -errno, no throw). It uses only the SocketApi of
// `--sockets fast|syscall|linux` (libc/sockets.ts), so the same code runs on newts's fast
// sockets, on newts's system-call sockets and on the host's Linux sockets.
//
//   memcached [-p PORT] [-l ADDR] [-m MB] [-M] [-I SIZE] [-c CONNS] [-A] [-v]
//             [--event-handler epoll|poll|select] [--exit-after N] [--sockets fast|syscall|linux]
//
//   -p 11211, -l 0.0.0.0, -m 64 (megabytes for items; k/m/g suffixes take bytes),
//   -M       return "SERVER_ERROR out of memory storing object" (binary 0x82) instead of evicting
//   -I 1m    the largest item (with k or m suffix), at most half of -m
//   -c 1024  connections; beyond: "ERROR Too many open connections" and a hang-up
//   -A       the `shutdown` command stops the server
//   --exit-after N  stop after N commands (tests); otherwise until killed or `shutdown`
//
// The protocol of a connection is picked by its first byte, as memcached does: 0x80 is the
// binary protocol (memcached/binary.ts), anything else the text protocol with the meta
// commands (memcached/text.ts, meta.ts); the cache is memcached/store.ts. A
// connection's work per wake-up is bounded (commands and reads), and one whose replies pile
// up past HIGH_WATER is not read until they drain, so no client stalls the others. Every
// wait has a finite timeout (WAIT_MS), so a kill or shutdown is never held up.
// Returns { status, result: { commands, connections, stats, sockets } } when it stops.
import {
  AF_INET, EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD, EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, IPPROTO_TCP, POLLERR, POLLHUP,
  POLLIN, POLLOUT, SO_REUSEADDR, SOCK_NONBLOCK, SOCK_STREAM, SOL_SOCKET, type SocketApi, TCP_NODELAY,
} from "../libc/api.ts";
import { type Backend, openSockets, socketsFromArgs } from "../libc/sockets.ts";
import { puts } from "../libc/stdio.ts";
import { getpid, heartbeat } from "../libc/unistd.ts";
import { EAGAIN, EINTR, ErrnoError, errnoName } from "../libc/errno.ts";
import { Counters, generalStats, itemsStats, type ServerInfo, slabsStats, Store } from "./memcached/store.ts";
import type { Action, Ctx } from "./memcached/framing.ts";
import { execText, TextParser } from "./memcached/text.ts";
import { BinaryParser, execBinary, MAGIC_REQ } from "./memcached/binary.ts";

export const VERSION = "1.6.0-newts";

/** Longest wait for events (then the loop looks again: heartbeats, kills, --exit-after). */
const WAIT_MS = 200;
/** Commands run for one connection before the others get a turn (memcached's reqs_per_event is 20). */
const BUDGET = 64;
/** Reads of one connection per wake-up. */
const READS_PER_EVENT = 8;
/** A connection with this many reply bytes queued is not read until they drain. */
const HIGH_WATER = 4 << 20;
const READ_BUF = 65536;
/** Bytes one writev takes from the queue at most. */
const WRITE_MAX = 256 * 1024;

type Handler = "epoll" | "poll" | "select";

export interface Options {
  port: number;
  addr: number;
  iface: string;
  maxBytes: number;
  evict: boolean;
  itemSizeMax: number;
  maxConns: number;
  shutdown: boolean;
  handler: Handler;
  exitAfter: number;
  verbose: boolean;
}

const USAGE =
  "usage: memcached [-p PORT] [-l ADDR] [-m MB] [-M] [-I SIZE] [-c CONNS] [-A] [-v] [--event-handler epoll|poll|select] [--exit-after N] [--sockets fast|syscall|linux]";

function parseAddr(s: string): number | null {
  const p = s.split(".");
  if (p.length !== 4) return null;
  let a = 0;
  for (const x of p) {
    if (!/^\d{1,3}$/.test(x) || Number(x) > 255) return null;
    a = a * 256 + Number(x);
  }
  return a >>> 0;
}

/** "1048576", "512k", "1m", "1g": bytes; null if not such a size. */
function parseSize(s: string, unit: number): number | null {
  const m = /^(\d+)([kKmMgG]?)$/.exec(s);
  if (!m) return null;
  const mult = { "": unit, k: 1024, m: 1 << 20, g: 1 << 30 }[m[2]!.toLowerCase() as "" | "k" | "m" | "g"];
  return Number(m[1]) * mult;
}

/** memcached's options (short and long forms); an error string on a bad one. */
export function parseOptions(argv: string[]): Options | string {
  const o: Options = {
    port: 11211, addr: 0, iface: "0.0.0.0", maxBytes: 64 << 20, evict: true, itemSizeMax: 1 << 20, maxConns: 1024,
    shutdown: false, handler: "epoll", exitAfter: 0, verbose: false,
  };
  const withValue: Record<string, string> = {
    "-p": "port", "--port": "port", "-l": "listen", "--listen": "listen", "-m": "memory", "--memory-limit": "memory",
    "-I": "item", "--max-item-size": "item", "-c": "conns", "--conn-limit": "conns", "--event-handler": "handler",
    "--exit-after": "exit", "-t": "threads", "--threads": "threads", "-U": "udp", "--udp-port": "udp",
  };
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i]!;
    let v: string | undefined;
    const eq = a.startsWith("--") ? a.indexOf("=") : -1;
    if (eq > 0) {
      v = a.slice(eq + 1);
      a = a.slice(0, eq);
    } else if (/^-[plmIctU]./.test(a)) {
      v = a.slice(2);
      a = a.slice(0, 2);
    }
    const what = withValue[a];
    if (what) {
      if (v === undefined) v = argv[++i];
      if (v === undefined) return `${a} needs a value`;
      switch (what) {
        case "port": {
          const n = Number(v);
          if (!/^\d+$/.test(v) || n < 0 || n > 65535) return `bad port '${v}'`;
          o.port = n;
          break;
        }
        case "listen": {
          const ad = parseAddr(v);
          if (ad === null) return `bad address '${v}'`;
          o.addr = ad;
          o.iface = v;
          break;
        }
        case "memory": {
          const n = parseSize(v, 1 << 20);
          if (n === null || n <= 0) return `bad memory limit '${v}'`;
          o.maxBytes = n;
          break;
        }
        case "item": {
          const n = parseSize(v, 1);
          if (n === null || n < 1024) return `bad item size '${v}' (at least 1024 bytes)`;
          if (n > 128 << 20) return "Cannot set item size limit higher than 128 mb.";
          o.itemSizeMax = n;
          break;
        }
        case "conns": {
          const n = Number(v);
          if (!/^\d+$/.test(v) || n < 1) return `bad connection limit '${v}'`;
          o.maxConns = n;
          break;
        }
        case "handler":
          if (v !== "epoll" && v !== "poll" && v !== "select") return `--event-handler: expected epoll, poll or select, got '${v}'`;
          o.handler = v;
          break;
        case "exit": {
          const n = Number(v);
          if (!/^\d+$/.test(v)) return `bad --exit-after '${v}'`;
          o.exitAfter = n;
          break;
        }
        default:
          break; // -t, -U: accepted, one thread and no UDP here
      }
      continue;
    }
    switch (a) {
      case "-M":
      case "--disable-evictions":
        o.evict = false;
        break;
      case "-A":
      case "--enable-shutdown":
        o.shutdown = true;
        break;
      case "-v":
      case "-vv":
      case "--verbose":
        o.verbose = true;
        break;
      default:
        return `unknown option '${argv[i]}'`;
    }
  }
  if (o.itemSizeMax > o.maxBytes / 2) return "Cannot set item size limit higher than 1/2 of memory max.";
  return o;
}

/** A connection's reply bytes: small pieces are packed into one buffer, large ones kept as they are. */
class OutQueue {
  private chunks: Uint8Array[] = [];
  private off = 0; // bytes of chunks[0] already written
  private tail: Uint8Array | null = null;
  private tailLen = 0;
  bytes = 0;

  push(b: Uint8Array): void {
    if (b.length === 0) return;
    this.bytes += b.length;
    if (b.length > 2048) {
      this.seal();
      this.chunks.push(b);
      return;
    }
    if (this.tail && this.tailLen + b.length > this.tail.length) this.seal();
    if (!this.tail) {
      this.tail = new Uint8Array(16384);
      this.tailLen = 0;
    }
    this.tail.set(b, this.tailLen);
    this.tailLen += b.length;
  }

  private seal(): void {
    if (this.tail && this.tailLen > 0) this.chunks.push(this.tail.subarray(0, this.tailLen));
    this.tail = null;
    this.tailLen = 0;
  }

  /** Up to WRITE_MAX bytes to write next, as an iovec. */
  iov(): Uint8Array[] {
    this.seal();
    const v: Uint8Array[] = [];
    let n = 0;
    for (let i = 0; i < this.chunks.length && n < WRITE_MAX; i++) {
      let c = this.chunks[i]!;
      if (i === 0) c = c.subarray(this.off);
      if (n + c.length > WRITE_MAX) c = c.subarray(0, WRITE_MAX - n);
      v.push(c);
      n += c.length;
    }
    return v;
  }

  consume(n: number): void {
    this.bytes -= n;
    while (n > 0) {
      const c = this.chunks[0]!;
      const left = c.length - this.off;
      if (n >= left) {
        n -= left;
        this.chunks.shift();
        this.off = 0;
      } else {
        this.off += n;
        n = 0;
      }
    }
  }
}

class Conn {
  text: TextParser | null = null;
  bin: BinaryParser | null = null;
  readonly out = new OutQueue();
  /** "": open; "after-write": close once the queue is written; "now": close at once. */
  closing: "" | "after-write" | "now" = "";
  eof = false;
  /** Events registered with epoll (or wanted from poll/select). */
  interest = 0;
  constructor(readonly fd: number, readonly peer: string) {}
}

const errno = (e: unknown): number => (e instanceof ErrnoError ? e.errno : -1);

class Server {
  private readonly store: Store;
  private readonly ctx: Ctx;
  private readonly conns = new Map<number, Conn>();
  /** Connections with complete commands still buffered (their budget ran out). */
  private readonly ready = new Set<Conn>();
  private readonly rbuf = new Uint8Array(READ_BUF);
  private readonly wbuf = new Uint8Array(WRITE_MAX);
  private lfd = -1;
  private ep = -1;
  private stop = false;
  private stopWhy = "";
  private commands = 0;
  private totalConns = 0;
  private rejected = 0;
  private bytesRead = 0;
  private bytesWritten = 0;
  private readonly started = Math.floor(Date.now() / 1000);
  private pid = 0;

  constructor(
    private readonly api: SocketApi,
    private readonly o: Options,
    private readonly backend: Backend,
  ) {
    this.store = new Store({ maxBytes: o.maxBytes, itemSizeMax: o.itemSizeMax, evict: o.evict });
    this.ctx = {
      store: this.store,
      version: VERSION,
      verbosity: 0,
      shutdownEnabled: o.shutdown,
      settings: { port: o.port, iface: o.iface, maxConns: o.maxConns },
      stats: (sub) => this.statLines(sub),
      resetStats: () => {
        Object.assign(this.store.counters, new Counters());
        this.totalConns = this.conns.size;
        this.rejected = 0;
        this.bytesRead = this.bytesWritten = 0;
      },
    };
  }

  private info(): ServerInfo {
    return {
      pid: this.pid, started: this.started, version: VERSION, maxConnections: this.o.maxConns, currConnections: this.conns.size,
      totalConnections: this.totalConns, rejectedConnections: this.rejected, bytesRead: this.bytesRead, bytesWritten: this.bytesWritten,
      extra: [["newts_sockets", this.api.backend], ["newts_event_handler", this.o.handler], ["newts_commands", this.commands]],
    };
  }

  private statLines(sub: string): [string, string | number][] | null {
    switch (sub) {
      case "":
        return generalStats(this.store, this.info());
      case "items":
        return itemsStats(this.store);
      case "slabs":
        return slabsStats(this.store);
      case "sizes":
      case "conns":
        return [];
      default:
        return null;
    }
  }

  private log(s: string): void {
    if (this.o.verbose) puts(`${s}`);
  }

  run(): { status: number; result: unknown } {
    const api = this.api;
    try {
      this.pid = getpid();
    } catch {
      this.pid = 0;
    }
    let port: number;
    try {
      this.lfd = api.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK);
      api.setsockopt(this.lfd, SOL_SOCKET, SO_REUSEADDR, 1);
      // replies go out at once: accepted connections inherit it (on Linux and newts), no call per accept
      api.setsockopt(this.lfd, IPPROTO_TCP, TCP_NODELAY, 1);
      api.bind(this.lfd, { addr: this.o.addr, port: this.o.port });
      api.listen(this.lfd, 1024);
      port = api.getsockname(this.lfd).port;
      if (this.o.handler === "epoll") {
        this.ep = api.epoll_create1();
        api.epoll_ctl(this.ep, EPOLL_CTL_ADD, this.lfd, EPOLLIN);
      }
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      puts(`failed to listen on ${this.o.iface}:${this.o.port}: ${why}`);
      return { status: 1, result: { error: why } };
    }
    const mem = this.o.maxBytes % (1 << 20) === 0 ? `${this.o.maxBytes >> 20} MB` : `${this.o.maxBytes} bytes`;
    puts(
      `listening on ${this.o.iface}:${port} (sockets ${this.backend}, ${this.o.handler}, -m ${mem}${this.o.evict ? "" : " -M"}, -I ${this.o.itemSizeMax}, version ${VERSION})`,
    );
    this.acceptAll(); // speculative: a client may be waiting already
    while (!this.stop) {
      heartbeat();
      const events = this.wait(this.ready.size > 0 ? 0 : WAIT_MS);
      for (const [fd, ev] of events) {
        if (fd === this.lfd) {
          this.acceptAll();
          continue;
        }
        const c = this.conns.get(fd);
        if (!c) continue;
        if (ev & (POLLIN | POLLERR | POLLHUP)) this.onReadable(c);
        if (ev & POLLOUT && this.conns.has(fd)) this.flush(c);
        this.settle(c);
      }
      for (const c of [...this.ready]) {
        if (!this.conns.has(c.fd)) {
          this.ready.delete(c);
          continue;
        }
        this.process(c);
        this.flush(c);
        this.settle(c);
      }
    }
    this.drain(2000);
    for (const c of [...this.conns.values()]) this.close(c);
    try {
      if (this.ep >= 0) api.close(this.ep);
      api.close(this.lfd);
    } catch {
      // going anyway
    }
    puts(`stopped (${this.stopWhy}) after ${this.commands} commands, ${this.totalConns} connections`);
    const st = Object.fromEntries(generalStats(this.store, this.info()));
    return { status: 0, result: { commands: this.commands, connections: this.totalConns, why: this.stopWhy, stats: st, sockets: api.stats() } };
  }

  /** One wait for events on the listener and the connections: [fd, poll-style revents] pairs. */
  private wait(timeoutMs: number): [number, number][] {
    const api = this.api;
    try {
      if (this.o.handler === "epoll") {
        return api.epoll_wait(this.ep, 256, timeoutMs).map((e) => [e.data, e.events & (EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP)]);
      }
      const fds: { fd: number; events: number }[] = [{ fd: this.lfd, events: POLLIN }];
      for (const c of this.conns.values()) if (c.interest) fds.push({ fd: c.fd, events: c.interest });
      if (this.o.handler === "poll") {
        const rev = api.poll(fds, timeoutMs);
        const out: [number, number][] = [];
        rev.forEach((r, i) => r !== 0 && out.push([fds[i]!.fd, r]));
        return out;
      }
      const rd = fds.filter((f) => f.events & POLLIN).map((f) => f.fd);
      const wr = fds.filter((f) => f.events & POLLOUT).map((f) => f.fd);
      const s = api.select(rd, wr, timeoutMs);
      const out = new Map<number, number>();
      for (const fd of s.readfds) out.set(fd, POLLIN);
      for (const fd of s.writefds) out.set(fd, (out.get(fd) ?? 0) | POLLOUT);
      return [...out];
    } catch (e) {
      if (errno(e) === EINTR) return [];
      throw e;
    }
  }

  /** Accepts until EAGAIN (at most 64 at a time), reading each new connection at once. */
  private acceptAll(): void {
    const api = this.api;
    for (let i = 0; i < 64; i++) {
      const a = { fd: 0, addr: 0, port: 0 };
      const fd = api.tryAccept(this.lfd, SOCK_NONBLOCK, a);
      if (fd < 0) {
        if (fd !== -EAGAIN && fd !== -EINTR) this.log(`accept: ${errnoName(-fd)}`);
        return;
      }
      a.fd = fd;
      this.totalConns++;
      if (this.conns.size >= this.o.maxConns) {
        this.rejected++;
        try {
          api.write(a.fd, new TextEncoder().encode("ERROR Too many open connections\r\n"));
        } catch {
          // it is being closed anyway
        }
        try {
          api.close(a.fd);
        } catch {
          // nothing more to do
        }
        continue;
      }
      const c = new Conn(a.fd, `${a.addr >>> 24}.${(a.addr >>> 16) & 255}.${(a.addr >>> 8) & 255}.${a.addr & 255}:${a.port}`);
      this.conns.set(a.fd, c);
      this.log(`<${a.fd} new connection from ${c.peer}`);
      this.onReadable(c); // speculative read
      this.settle(c);
    }
  }

  /** Reads until EAGAIN (a bounded number of times), running the commands after each read. */
  private onReadable(c: Conn): void {
    for (let i = 0; i < READS_PER_EVENT && c.closing === "" && !c.eof && c.out.bytes <= HIGH_WATER && !this.stop; i++) {
      const n = this.api.tryRecv(c.fd, this.rbuf);
      if (n < 0) {
        if (n === -EAGAIN) break;
        if (n === -EINTR) continue;
        this.log(`<${c.fd} read: ${errnoName(-n)}`);
        c.closing = "now";
        return;
      }
      if (n === 0) {
        c.eof = true;
        break;
      }
      this.bytesRead += n;
      this.feed(c, this.rbuf.subarray(0, n));
      this.process(c);
      this.flush(c);
    }
    if (c.eof && c.closing === "") {
      // The client has said all it will: answer what it sent, then close.
      while (c.closing === "" && this.ready.has(c) && !this.stop) {
        this.process(c);
        this.flush(c);
        if (c.out.bytes > HIGH_WATER) return; // the rest when the queue drains
      }
      if (c.closing === "") c.closing = "after-write";
    }
  }

  private feed(c: Conn, b: Uint8Array): void {
    if (!c.text && !c.bin) {
      if (b[0] === MAGIC_REQ) c.bin = new BinaryParser({ itemSizeMax: this.o.itemSizeMax });
      else c.text = new TextParser({ itemSizeMax: this.o.itemSizeMax });
    }
    if (c.bin) c.bin.push(b);
    else c.text!.push(b);
    this.ready.add(c);
  }

  /** Runs up to BUDGET buffered commands of a connection. */
  private process(c: Conn): void {
    let n = 0;
    while (c.closing === "" && !this.stop) {
      if (n >= BUDGET || c.out.bytes > HIGH_WATER) return; // stays ready
      let act: Action;
      const out = (b: Uint8Array) => c.out.push(b);
      try {
        if (c.bin) {
          const ev = c.bin.next();
          if (!ev) break;
          act = execBinary(ev, this.ctx, out);
        } else if (c.text) {
          const cmd = c.text.next();
          if (!cmd) break;
          if (cmd.kind === "close") this.log(`<${c.fd} hang-up: ${cmd.why}`);
          act = execText(cmd, this.ctx, out);
        } else break;
      } catch (e) {
        // A bug, not the client's doing: drop the connection, keep serving the others.
        puts(`internal error on a connection: ${e instanceof Error ? e.message : String(e)}`);
        c.closing = "now";
        break;
      }
      n++;
      this.commands++;
      switch (act) {
        case "ok":
          break;
        case "close":
          c.closing = "now";
          break;
        case "close-after-write":
          c.closing = "after-write";
          break;
        case "shutdown":
          this.stop = true;
          this.stopWhy = "shutdown command";
          c.closing = "now";
          break;
      }
      if (this.o.exitAfter > 0 && this.commands >= this.o.exitAfter) {
        this.stop = true;
        this.stopWhy = `--exit-after ${this.o.exitAfter}`;
      }
    }
    this.ready.delete(c);
  }

  /** Writes what the queue holds until EAGAIN. */
  private flush(c: Conn): void {
    while (c.out.bytes > 0 && c.closing !== "now") {
      // One send: a big chunk as it is, small ones gathered into the write buffer.
      const iov = c.out.iov();
      let buf = iov[0]!;
      if (iov.length > 1 && buf.length < 65536) {
        let n = 0;
        for (const b of iov) {
          const m = Math.min(b.length, this.wbuf.length - n);
          this.wbuf.set(b.subarray(0, m), n);
          n += m;
          if (n === this.wbuf.length) break;
        }
        buf = this.wbuf.subarray(0, n);
      }
      const n = this.api.trySend(c.fd, buf);
      if (n < 0) {
        if (n === -EAGAIN) return;
        if (n === -EINTR) continue;
        this.log(`<${c.fd} write: ${errnoName(-n)}`);
        c.closing = "now";
        return;
      }
      if (n === 0) return;
      this.bytesWritten += n;
      c.out.consume(n);
    }
  }

  /** After a connection's turn: close it, or register the events it waits for. */
  private settle(c: Conn): void {
    if (!this.conns.has(c.fd)) return;
    if (c.closing === "now" || (c.closing === "after-write" && c.out.bytes === 0)) {
      this.close(c);
      return;
    }
    const want = (c.closing === "" && !c.eof && c.out.bytes <= HIGH_WATER ? POLLIN : 0) | (c.out.bytes > 0 ? POLLOUT : 0);
    if (want === c.interest) return;
    if (this.ep >= 0) {
      try {
        const ev = (want & POLLIN ? EPOLLIN : 0) | (want & POLLOUT ? EPOLLOUT : 0);
        if (c.interest === 0) this.api.epoll_ctl(this.ep, EPOLL_CTL_ADD, c.fd, ev);
        else if (want === 0) this.api.epoll_ctl(this.ep, EPOLL_CTL_DEL, c.fd);
        else this.api.epoll_ctl(this.ep, EPOLL_CTL_MOD, c.fd, ev);
      } catch (e) {
        this.log(`<${c.fd} epoll_ctl: ${String(e)}`);
        this.close(c);
        return;
      }
    }
    c.interest = want;
  }

  private close(c: Conn): void {
    if (!this.conns.delete(c.fd)) return;
    this.ready.delete(c);
    if (this.ep >= 0 && c.interest !== 0) {
      try {
        this.api.epoll_ctl(this.ep, EPOLL_CTL_DEL, c.fd);
      } catch {
        // closing anyway
      }
    }
    try {
      this.api.close(c.fd);
    } catch {
      // the fd is gone either way
    }
    this.log(`<${c.fd} connection closed`);
  }

  /** On the way out: write what is queued, for at most `ms`. */
  private drain(ms: number): void {
    const deadline = performance.now() + ms;
    for (;;) {
      const pending = [...this.conns.values()].filter((c) => c.out.bytes > 0 && c.closing !== "now");
      if (pending.length === 0 || performance.now() > deadline) return;
      for (const c of pending) this.flush(c);
      const still = pending.filter((c) => c.out.bytes > 0 && c.closing !== "now");
      if (still.length === 0) return;
      try {
        this.api.poll(still.map((c) => ({ fd: c.fd, events: POLLOUT })), 50);
      } catch {
        return;
      }
      heartbeat();
    }
  }
}

export function main(argv: string[]) {
  const args = [...argv];
  let backend: Backend;
  try {
    backend = socketsFromArgs(args);
  } catch (e) {
    puts(`${(e as Error).message}`);
    return { status: 2, result: (e as Error).message };
  }
  const o = parseOptions(args.slice(1));
  if (typeof o === "string") {
    puts(`${o}`);
    puts(USAGE);
    return { status: 2, result: o };
  }
  return new Server(openSockets(backend), o, backend).run();
}
