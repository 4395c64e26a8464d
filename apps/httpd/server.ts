// httpd's server (the program and what it does: ../httpd.ts): the listener, the event loop
// over the poller, each connection's state machine (open -> closing -> linger -> closed),
// the answers (files from the cache or streamed from disk, errors, 301/304/206/416), the
// timers and the access log.
import { closeSync, fstatSync, openSync, readSync, realpathSync, writeSync } from "node:fs";
import {
  AF_INET, POLLERR, POLLHUP, POLLIN, POLLOUT, SHUT_WR, SO_LINGER, SO_REUSEADDR, SOCK_NONBLOCK,
  SOCK_STREAM, SOL_SOCKET, IPPROTO_TCP, TCP_NODELAY, type SocketApi,
} from "../../libc/api.ts";
import { EAGAIN, EINTR, ErrnoError } from "../../libc/errno.ts";
import { heartbeat } from "../../libc/unistd.ts";
import { formatIpv4Addr } from "../../libc/inet.ts";
import { makePoller, type Handler, type Poller } from "../common/poller.ts";
import { RequestParser, type HttpRequest, type ParseError } from "./parse.ts";
import {
  clfDate, encodePath, errorBody, httpDateNow, parseHttpDate, parseRange, responseHead, SERVER_NAME, type HeaderList,
} from "./response.ts";
import { FileCache } from "./cache.ts";

const IN = POLLIN; // === EPOLLIN
const OUT = POLLOUT; // === EPOLLOUT
const ERRS = POLLERR | POLLHUP; // === EPOLLERR | EPOLLHUP

/** Bytes of answers queued beyond which a connection is not read (and its next pipelined requests wait). */
const HIGH_WATER = 256 * 1024;
/** Most bytes handed to one write/writev, and most pieces in one writev (the answers to pipelined requests go out together). */
const WRITE_MAX = 64 * 1024;
const IOV_MAX = 64;
/** Reads of one connection per event (each a full buffer; a short read ends the turn). */
const READS_PER_TURN = 4;
/** Connections accepted per readable listener per turn (then the others get their turn). */
const ACCEPTS_PER_TURN = 256;
/** Longest wait, and how often the timers are looked at. */
const WAIT_MS = 500;
const HOUSEKEEPING_MS = 250;
/** How long a closing connection's leftover bytes are read and dropped before the close. */
const LINGER_MS = 2000;
/** With --exit-after: how long answers in flight may take before the server exits anyway. */
const DRAIN_MS = 10_000;

/** httpd's settings, as its options give them (../httpd.ts parses them). */
export interface HttpdOptions {
  port: number;
  addr: number;
  docroot: string;
  handler: Handler;
  maxConns: number;
  maxKeepalive: number;
  idleMs: number;
  headerMs: number;
  writeMs: number;
  exitAfter: number;
  accessLog: string | null;
  cacheSize: number;
  cacheMaxFile: number;
  backlog: number;
}

// ---- connections

/** Part of a file still to be read from disk and sent (files the cache does not hold). */
class FileChunk {
  constructor(public fd: number, public pos: number, public readonly end: number) {}
}

type Item = Uint8Array | FileChunk;

type State = "open" | "closing" | "linger";

interface Conn {
  fd: number;
  peer: string;
  parser: RequestParser;
  state: State;
  out: Item[];
  /** Bytes of out[0] already written. */
  outOff: number;
  /** Bytes queued (files: what is left of them). */
  outBytes: number;
  /** The client's FIN has been read. */
  peerEof: boolean;
  requests: number;
  /** When the current request began (the accept, or its first byte). */
  reqStart: number;
  /** When the connection last had nothing to do (for --idle-timeout). */
  idleSince: number;
  /** When output last moved (or was first queued). */
  lastProgress: number;
  lingerUntil: number;
  /** Events the poller watches for it. */
  events: number;
}

/** What the server counts; the program's result when it exits. */
export interface Stats {
  requests: number;
  responses: Record<string, number>;
  bytesIn: number;
  bytesOut: number;
  bodyBytes: number;
  connections: { accepted: number; closed: number; rejected: number; open: number; peak: number; aborted: number };
  timeouts: { header: number; idle: number; write: number; linger: number };
  parseErrors: number;
  keepaliveLimit: number;
  cache: { hits: number; misses: number; loads: number; entries: number; bytes: number };
  loops: number;
  events: number;
  acceptErrors: number;
}

/** The errno of a thrown ErrnoError, -1 for anything else. */
export function errnoOf(e: unknown): number {
  return e instanceof ErrnoError ? e.errno : -1;
}

/** One httpd: listen() once, then run() until it is killed or --exit-after is reached. */
export class Server {
  private readonly conns = new Map<number, Conn>();
  private readonly poller: Poller;
  private readonly cache: FileCache;
  readonly root: string;
  private readonly scratch = new Uint8Array(64 * 1024);
  private lfd = -1;
  private now = performance.now();
  private draining = false;
  private drainUntil = 0;
  private log: { fd: number; lines: string[]; bytes: number; flushed: number } | null = null;
  readonly stats: Stats = {
    requests: 0, responses: {}, bytesIn: 0, bytesOut: 0, bodyBytes: 0,
    connections: { accepted: 0, closed: 0, rejected: 0, open: 0, peak: 0, aborted: 0 },
    timeouts: { header: 0, idle: 0, write: 0, linger: 0 }, parseErrors: 0, keepaliveLimit: 0,
    cache: { hits: 0, misses: 0, loads: 0, entries: 0, bytes: 0 }, loops: 0, events: 0, acceptErrors: 0,
  };

  constructor(private readonly api: SocketApi, private readonly o: HttpdOptions) {
    this.poller = makePoller(o.handler, api);
    this.root = realpathSync(o.docroot);
    this.cache = new FileCache(this.root, o.cacheSize, o.cacheMaxFile);
    if (o.accessLog) this.log = { fd: openSync(o.accessLog, "a"), lines: [], bytes: 0, flushed: this.now };
  }

  /** socket, bind, listen: the address actually bound. */
  listen(): { addr: number; port: number } {
    const api = this.api;
    const fd = api.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK);
    try {
      api.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
      // answers go out whole at once (accepted connections inherit it, on Linux and newts)
      api.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
      api.bind(fd, { addr: this.o.addr, port: this.o.port });
      api.listen(fd, this.o.backlog);
    } catch (e) {
      try {
        api.close(fd);
      } catch {
        // the error that matters is the first
      }
      throw e;
    }
    this.lfd = fd;
    this.poller.set(fd, IN);
    return api.getsockname(fd);
  }

  /** The event loop; returns when draining is over (--exit-after). */
  run(): void {
    const ready: Array<[number, number]> = [];
    let nextHousekeeping = performance.now() + HOUSEKEEPING_MS;
    for (;;) {
      heartbeat();
      this.stats.loops++;
      this.now = performance.now();
      const timeout = Math.max(0, Math.min(WAIT_MS, Math.ceil(nextHousekeeping - this.now)));
      ready.length = 0;
      try {
        this.poller.wait(timeout, ready);
      } catch (e) {
        if (errnoOf(e) !== EINTR) throw e;
      }
      this.now = performance.now();
      this.stats.events += ready.length;
      for (const [fd, ev] of ready) {
        if (fd === this.lfd) {
          if (!this.draining) this.acceptAll();
          continue;
        }
        const c = this.conns.get(fd);
        if (c) this.service(c, ev);
      }
      if (this.now >= nextHousekeeping) {
        this.housekeeping();
        nextHousekeeping = this.now + HOUSEKEEPING_MS;
      }
      if (!this.draining && this.o.exitAfter > 0 && this.stats.requests >= this.o.exitAfter) this.startDrain();
      if (this.draining && (this.conns.size === 0 || this.now >= this.drainUntil)) break;
    }
    for (const c of [...this.conns.values()]) this.close(c, false);
    this.flushLog(true);
    if (this.log) closeSync(this.log.fd);
  }

  // ---- accepting

  private acceptAll(): void {
    for (let i = 0; i < ACCEPTS_PER_TURN; i++) {
      let a;
      try {
        a = this.api.accept4(this.lfd, SOCK_NONBLOCK);
      } catch (e) {
        const er = errnoOf(e);
        if (er === EAGAIN) return;
        if (er === EINTR) continue;
        this.stats.acceptErrors++; // ECONNABORTED, EMFILE...: try again on the next turn
        return;
      }
      const st = this.stats.connections;
      if (this.conns.size >= this.o.maxConns) {
        st.rejected++;
        try {
          this.api.close(a.fd);
        } catch {
          // nothing to do
        }
        continue;
      }
      st.accepted++;
      const c: Conn = {
        fd: a.fd, peer: formatIpv4Addr(a.addr), parser: new RequestParser(), state: "open", out: [], outOff: 0, outBytes: 0, peerEof: false,
        requests: 0, reqStart: this.now, idleSince: this.now, lastProgress: this.now, lingerUntil: 0, events: 0,
      };
      this.conns.set(a.fd, c);
      st.open = this.conns.size;
      if (st.open > st.peak) st.peak = st.open;
      // Speculative read: the request is often there already.
      this.service(c, IN);
    }
  }

  // ---- one connection's turn

  private service(c: Conn, ev: number): void {
    if (ev & (OUT | ERRS) && c.outBytes > 0 && !this.flush(c)) return;
    if (ev & (IN | ERRS) && !this.readIn(c)) return;
    this.progress(c);
  }

  /** Answers what the parser has, writes, moves the state on, and sets what to wait for. */
  private progress(c: Conn): void {
    if (this.conns.get(c.fd) !== c) return;
    // Answer, write; again while writing made room for requests that waited (pipelining).
    for (;;) {
      const more = this.answerAll(c);
      if (c.outBytes > 0 && !this.flush(c)) return;
      if (!more || c.outBytes >= HIGH_WATER) break;
    }
    if (c.outBytes === 0) {
      if (c.state === "closing") {
        if (!this.finish(c)) return;
      } else if (c.state === "open" && c.peerEof) {
        // The client is done sending: what it sent is answered; an unfinished request is dropped.
        this.close(c, false);
        return;
      }
    }
    let ev = 0;
    if ((c.state === "open" && !c.peerEof && c.outBytes < HIGH_WATER) || c.state === "linger") ev |= IN;
    if (c.outBytes > 0) ev |= OUT;
    if (ev !== c.events) {
      this.poller.set(c.fd, ev);
      c.events = ev;
    }
  }

  /** Reads what is there (a few buffers at most); false if the connection was closed. */
  private readIn(c: Conn): boolean {
    if (c.state === "closing") return true; // not reading: the answer goes out, then linger reads
    for (let k = 0; k < READS_PER_TURN; k++) {
      let n: number;
      try {
        n = this.api.read(c.fd, this.scratch);
      } catch (e) {
        if (errnoOf(e) === EAGAIN) break;
        this.close(c, true); // ECONNRESET and friends
        return false;
      }
      if (n === 0) {
        c.peerEof = true;
        if (c.state === "linger") {
          this.close(c, false);
          return false;
        }
        break;
      }
      this.stats.bytesIn += n;
      if (c.state === "linger") continue; // dropped
      if (c.parser.pending === 0 && c.requests > 0) c.reqStart = this.now;
      c.parser.push(this.scratch.subarray(0, n));
      if (n < this.scratch.length) break;
      this.answerAll(c);
      if (c.state !== "open" || c.outBytes >= HIGH_WATER) break;
    }
    return true;
  }

  /**
   * Answers complete requests in order while the connection is open and its queue below the
   * high-water mark; true if it stopped at the mark (requests may be waiting).
   */
  private answerAll(c: Conn): boolean {
    while (c.state === "open") {
      if (c.outBytes >= HIGH_WATER) return true;
      const r = c.parser.next();
      if (r.kind === "need") break;
      if (r.kind === "error") {
        this.answerError(c, r);
        break;
      }
      this.answer(c, r.req);
      c.reqStart = this.now; // the next request (bytes may be held already) starts now
    }
    return false;
  }

  // ---- answers

  private answerError(c: Conn, e: ParseError): void {
    this.stats.parseErrors++;
    this.stats.requests++;
    c.requests++;
    const head = e.line.startsWith("HEAD ");
    const extra: HeaderList = e.status === 405 ? [["Allow", "GET, HEAD"]] : [];
    this.queueSimple(c, e.status, false, head, extra, e.line);
  }

  /** An answer with the small HTML body of its status. */
  private queueSimple(c: Conn, status: number, keep: boolean, head: boolean, extra: HeaderList, line: string): void {
    const body = errorBody(status);
    const h: HeaderList = [
      ["Date", httpDateNow()], ["Server", SERVER_NAME], ...extra, ["Content-Type", "text/html; charset=utf-8"], ["Content-Length", body.length],
      ["Connection", keep ? "keep-alive" : "close"],
    ];
    this.queue(c, responseHead(status, h), head ? null : body, head ? 0 : body.length);
    this.logLine(c, line, status, head ? 0 : body.length);
    this.count(status);
    if (!keep) c.state = "closing";
  }

  private answer(c: Conn, req: HttpRequest): void {
    this.stats.requests++;
    c.requests++;
    let keep = req.keepAlive && !this.draining;
    if (keep && c.requests >= this.o.maxKeepalive) {
      keep = false;
      this.stats.keepaliveLimit++;
    }
    const isHead = req.method === "HEAD";
    const full = this.root + req.path;
    let f = this.cache.lookup(full, this.now);
    if (f.kind === "dir") {
      if (!req.path.endsWith("/")) {
        const loc = encodePath(req.path) + "/" + (req.query ? `?${req.query}` : "");
        return this.queueSimple(c, 301, keep, isHead, [["Location", loc]], req.line);
      }
      f = this.cache.lookup(full + "index.html", this.now);
      if (f.kind !== "file") f = { kind: "forbidden" }; // no directory listings
    }
    if (f.kind !== "file") {
      const status = f.kind === "missing" ? 404 : f.kind === "forbidden" ? 403 : 500;
      return this.queueSimple(c, status, keep, isHead, [], req.line);
    }
    const base: HeaderList = [
      ["Date", httpDateNow()], ["Server", SERVER_NAME], ["Last-Modified", f.lastModified], ["Content-Type", f.type], ["Accept-Ranges", "bytes"],
    ];
    const conn: [string, string] = ["Connection", keep ? "keep-alive" : "close"];
    const mtimeSec = Math.floor(f.mtimeMs / 1000) * 1000;
    // If-Modified-Since (ignored when If-None-Match is present: this server makes no entity tags).
    const ims = req.headers.get("if-modified-since");
    if (ims !== undefined && !req.headers.has("if-none-match")) {
      const t = parseHttpDate(ims);
      if (t !== null && mtimeSec <= t) {
        this.queue(c, responseHead(304, [["Date", base[0]![1]], ["Server", SERVER_NAME], ["Last-Modified", f.lastModified], conn]), null, 0);
        this.logLine(c, req.line, 304, 0);
        this.count(304);
        if (!keep) c.state = "closing";
        return;
      }
    }
    let status = 200;
    let start = 0;
    let end = f.size; // exclusive
    const rh = req.headers.get("range");
    if (rh !== undefined) {
      const ifRange = req.headers.get("if-range");
      const honor = ifRange === undefined || parseHttpDate(ifRange) === mtimeSec;
      const r = honor ? parseRange(rh, f.size) : null;
      if (r === "unsatisfiable") return this.queueSimple(c, 416, keep, isHead, [["Content-Range", `bytes */${f.size}`]], req.line);
      if (r) {
        status = 206;
        start = r.start;
        end = r.end + 1;
        base.push(["Content-Range", `bytes ${r.start}-${r.end}/${f.size}`]);
      }
    }
    base.push(["Content-Length", end - start], conn);
    const headBytes = responseHead(status, base);
    let body: Item | null = null;
    if (!isHead && end > start) {
      if (f.data) body = f.data.subarray(start, end);
      else {
        let fd: number;
        try {
          fd = openSync(f.path, "r");
          if (fstatSync(fd).size < end) throw new Error("file shrank");
        } catch {
          return this.queueSimple(c, 500, false, isHead, [], req.line);
        }
        body = new FileChunk(fd, start, end);
      }
    }
    this.queue(c, headBytes, body, isHead ? 0 : end - start);
    this.logLine(c, req.line, status, isHead ? 0 : end - start);
    this.count(status);
    if (!keep) c.state = "closing";
  }

  private count(status: number): void {
    const k = String(status);
    this.stats.responses[k] = (this.stats.responses[k] ?? 0) + 1;
  }

  private queue(c: Conn, head: Uint8Array, body: Item | null, bodyLen: number): void {
    if (c.outBytes === 0) c.lastProgress = this.now;
    c.out.push(head);
    c.outBytes += head.length;
    if (body) {
      c.out.push(body);
      c.outBytes += bodyLen;
      this.stats.bodyBytes += bodyLen;
    }
  }

  /** Writes what the queue holds until it is empty or the socket is full; false if the connection was closed. */
  private flush(c: Conn): boolean {
    while (c.out.length > 0) {
      const iov: Uint8Array[] = [];
      let total = 0;
      for (let i = 0; i < c.out.length && total < WRITE_MAX && iov.length < IOV_MAX; i++) {
        let it = c.out[i]!;
        if (it instanceof FileChunk) {
          const want = Math.min(it.end - it.pos, WRITE_MAX - total);
          const chunk = new Uint8Array(want);
          let got = 0;
          try {
            got = readSync(it.fd, chunk, 0, want, it.pos);
          } catch {
            got = -1;
          }
          if (got <= 0) {
            this.close(c, true); // the file shrank or failed: the promised length cannot be kept
            return false;
          }
          it.pos += got;
          const bytes = got === want ? chunk : chunk.subarray(0, got);
          if (it.pos >= it.end) {
            closeSync(it.fd);
            it.fd = -1;
            c.out[i] = bytes;
          } else c.out.splice(i, 0, bytes);
          it = bytes;
        }
        const piece = i === 0 && c.outOff > 0 ? it.subarray(c.outOff) : it;
        const take = Math.min(piece.length, WRITE_MAX - total);
        iov.push(take === piece.length ? piece : piece.subarray(0, take));
        total += take;
      }
      let n: number;
      try {
        n = iov.length === 1 ? this.api.write(c.fd, iov[0]!) : this.api.writev(c.fd, iov);
      } catch (e) {
        if (errnoOf(e) === EAGAIN) return true;
        this.close(c, true); // EPIPE, ECONNRESET: the client is gone
        return false;
      }
      this.stats.bytesOut += n;
      c.outBytes -= n;
      if (n > 0) c.lastProgress = this.now;
      let left = n;
      while (left > 0) {
        const it = c.out[0] as Uint8Array;
        const rest = it.length - c.outOff;
        if (left >= rest) {
          left -= rest;
          c.out.shift();
          c.outOff = 0;
        } else {
          c.outOff += left;
          left = 0;
        }
      }
      if (n < total) return true;
    }
    c.idleSince = this.now;
    return true;
  }

  /** The last answer is out: shut our side, then read the client's leftovers until its FIN. False if closed. */
  private finish(c: Conn): boolean {
    if (c.peerEof || this.draining) {
      this.close(c, false);
      return false;
    }
    try {
      this.api.shutdown(c.fd, SHUT_WR);
    } catch {
      this.close(c, false);
      return false;
    }
    c.state = "linger";
    c.lingerUntil = this.now + LINGER_MS;
    return this.readIn(c);
  }

  private close(c: Conn, abort: boolean): void {
    if (this.conns.get(c.fd) !== c) return;
    this.conns.delete(c.fd);
    this.poller.del(c.fd);
    for (const it of c.out) {
      if (it instanceof FileChunk && it.fd >= 0) closeSync(it.fd);
    }
    c.out.length = 0;
    c.outBytes = 0;
    try {
      if (abort) this.api.setsockopt(c.fd, SOL_SOCKET, SO_LINGER, { onoff: true, linger: 0 });
    } catch {
      // closing anyway
    }
    try {
      this.api.close(c.fd);
    } catch {
      // gone already
    }
    const st = this.stats.connections;
    st.closed++;
    if (abort) st.aborted++;
    st.open = this.conns.size;
  }

  // ---- timers

  private housekeeping(): void {
    const now = this.now;
    const o = this.o;
    for (const c of [...this.conns.values()]) {
      if (c.state === "linger") {
        if (now >= c.lingerUntil) {
          this.stats.timeouts.linger++;
          this.close(c, false);
        }
      } else if (c.outBytes > 0) {
        if (now - c.lastProgress >= o.writeMs) {
          this.stats.timeouts.write++;
          this.close(c, true);
        }
      } else if (c.state === "open" && (c.requests === 0 || c.parser.pending > 0)) {
        if (now - c.reqStart >= o.headerMs) {
          this.stats.timeouts.header++;
          if (c.parser.pending > 0) {
            // A request was begun and not finished in time: say so, then close.
            this.queueSimple(c, 408, false, false, [], "-");
            this.stats.requests++;
            this.progress(c);
          } else this.close(c, false);
        }
      } else if (c.state === "open" && now - c.idleSince >= o.idleMs) {
        this.stats.timeouts.idle++;
        this.close(c, false);
      }
    }
    this.flushLog(false);
  }

  private startDrain(): void {
    this.draining = true;
    this.drainUntil = this.now + DRAIN_MS;
    if (this.lfd >= 0) {
      this.poller.del(this.lfd);
      try {
        this.api.close(this.lfd);
      } catch {
        // closing anyway
      }
      this.lfd = -1;
    }
    for (const c of [...this.conns.values()]) {
      if (c.outBytes === 0) this.close(c, false);
      else if (c.state === "open") c.state = "closing";
    }
  }

  // ---- access log (common log format)

  private logLine(c: Conn, line: string, status: number, bytes: number): void {
    const l = this.log;
    if (!l) return;
    const s = `${c.peer} - - [${clfDate(Date.now())}] "${line.replace(/["\\]/g, (x) => `\\${x}`)}" ${status} ${bytes > 0 ? bytes : "-"}\n`;
    l.lines.push(s);
    l.bytes += s.length;
    if (l.bytes >= 64 * 1024) this.flushLog(true);
  }

  private flushLog(force: boolean): void {
    const l = this.log;
    if (!l || l.lines.length === 0) return;
    if (!force && this.now - l.flushed < 1000) return;
    writeSync(l.fd, l.lines.join(""));
    l.lines.length = 0;
    l.bytes = 0;
    l.flushed = this.now;
  }

  snapshot(): Stats {
    const s = this.stats;
    s.connections.open = this.conns.size;
    s.cache = { hits: this.cache.hits, misses: this.cache.misses, loads: this.cache.loads, entries: this.cache.entries, bytes: this.cache.bytes };
    return s;
  }
}
