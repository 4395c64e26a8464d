// memcached's server (the program and what it does: ../memcached.ts): the listener, the
// event loop over the poller, each connection's input (parsed by the protocol its first
// byte picks) and reply queue, and the server's side of `stats`.
import {
  AF_INET, IPPROTO_TCP, POLLERR, POLLHUP, POLLIN, POLLOUT, SO_REUSEADDR, SOCK_NONBLOCK, SOCK_STREAM, SOL_SOCKET, type SocketApi, TCP_NODELAY,
} from "../../libc/api.ts";
import type { Backend } from "../../libc/sockets.ts";
import { puts } from "../../libc/stdio.ts";
import { getpid, heartbeat } from "../../libc/unistd.ts";
import { EAGAIN, EINTR, ErrnoError, errnoName } from "../../libc/errno.ts";
import { makePoller, type Handler, type Poller } from "../common/poller.ts";
import { Counters, generalStats, itemsStats, type ServerInfo, slabsStats, Store } from "./store.ts";
import type { Action, Ctx } from "./framing.ts";
import { execText, TextParser } from "./text.ts";
import { BinaryParser, execBinary, MAGIC_REQ } from "./binary.ts";

/** The version `version` and binary Version report. */
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
/** Most ready fds one epoll_wait returns. */
const MAX_EVENTS = 256;

/** memcached's settings, as its options give them (../memcached.ts parses them). */
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
  /** Events registered with the poller (0: not registered). */
  interest = 0;
  constructor(readonly fd: number, readonly peer: string) {}
}

const errno = (e: unknown): number => (e instanceof ErrnoError ? e.errno : -1);

/** One memcached: run() listens and serves until shutdown, --exit-after or a kill. */
export class Server {
  private readonly store: Store;
  private readonly ctx: Ctx;
  private readonly conns = new Map<number, Conn>();
  /** Connections with complete commands still buffered (their budget ran out). */
  private readonly ready = new Set<Conn>();
  private readonly rbuf = new Uint8Array(READ_BUF);
  private readonly wbuf = new Uint8Array(WRITE_MAX);
  private lfd = -1;
  private poller: Poller | null = null;
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
      this.poller = makePoller(this.o.handler, api, MAX_EVENTS);
      this.poller.set(this.lfd, POLLIN);
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
      this.poller!.close();
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
    const out: [number, number][] = [];
    try {
      this.poller!.wait(timeoutMs, out);
    } catch (e) {
      if (errno(e) === EINTR) return [];
      throw e;
    }
    return out;
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
    try {
      if (want === 0) this.poller!.del(c.fd);
      else this.poller!.set(c.fd, want); // only epoll's can fail (epoll_ctl)
    } catch (e) {
      this.log(`<${c.fd} epoll_ctl: ${String(e)}`);
      this.close(c);
      return;
    }
    c.interest = want;
  }

  private close(c: Conn): void {
    if (!this.conns.delete(c.fd)) return;
    this.ready.delete(c);
    this.poller!.del(c.fd); // it ignores an fd it does not watch, and epoll_ctl's failure: closing anyway
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
