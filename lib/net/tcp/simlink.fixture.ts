// simlink.fixture.ts — a simulated link for TCP tests: hosts with a connection table, a wire
// that can drop, duplicate and reorder segments (seeded PRNG, so every run is the
// same), and a virtual clock that jumps to the next delivery or timer deadline.
//
//   const link = new SimLink({ seed: 1, lossRate: 0.05 });
//   const a = link.host(0x0a000001), b = link.host(0x0a000002);
//   const l = b.listen(80);
//   const c = a.connect(link.now, 40000, b.addr, 80);
//   link.run({ until: () => c.state === TcpState.ESTABLISHED });

import { type TcpOptions, type TcpRepr, TcpFlag } from "../types.ts";
import { TcpConnection } from "./connection.ts";
import { type ListenerConfig, TcpListener } from "./listener.ts";
import { isnFor } from "./syncookie.ts";
import { type Outgoing, TcpTable } from "./table.ts";
import type { TcpConfig, TcpEvent } from "./tcb.ts";

/** xorshift32: a small deterministic PRNG. */
export class Prng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    let x = this.s;
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    this.s = x;
    return x;
  }
  /** Uniform in [0, 1). */
  float(): number {
    return this.next() / 4294967296;
  }
  /** Deterministic bytes. */
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.next() & 0xff;
    return b;
  }
}

/** One host: a table of connections and listeners, and the events each connection reported. */
export class SimHost {
  readonly table = new TcpTable();
  /** Every event of every connection, in order, kept after the connection is gone. */
  readonly log = new Map<TcpConnection, TcpEvent[]>();
  private readonly pending: Outgoing[] = [];
  private readonly conns = new Set<TcpConnection>();

  constructor(readonly addr: number, readonly cfg: TcpConfig = {}) {}

  listen(port: number, backlog = 128, cfg: ListenerConfig = this.cfg): TcpListener {
    const l = new TcpListener(cfg, backlog);
    this.table.listen(this.addr, port, l);
    return l;
  }

  /** Active open; the ISS comes from isnFor unless given. */
  connect(now: number, localPort: number, remoteAddr: number, remotePort: number, cfg: TcpConfig = this.cfg, iss?: number): TcpConnection {
    const c = new TcpConnection(cfg);
    c.connect(now, { addr: this.addr, port: localPort }, { addr: remoteAddr, port: remotePort }, iss ?? isnFor([1, 2], now, this.addr, localPort, remoteAddr, remotePort));
    this.table.add(c);
    this.conns.add(c);
    return c;
  }

  /** Events of `c` so far. */
  events(c: TcpConnection): TcpEvent[] {
    return this.log.get(c) ?? [];
  }

  receive(now: number, seg: TcpRepr, src: number): void {
    const r = this.table.dispatch(now, seg, src, this.addr);
    this.pending.push(...r.replies);
    if (r.accepted) this.conns.add(r.accepted);
  }

  tick(now: number): void {
    for (const c of this.conns) {
      const d = c.nextDeadline();
      if (d >= 0 && d <= now) c.onTick(now);
    }
    for (const l of this.table.listenersAll()) {
      const d = l.nextDeadline();
      if (d >= 0 && d <= now) this.pending.push(...l.onTick(now));
    }
  }

  poll(now: number): Outgoing[] {
    const out = this.pending.splice(0);
    for (const c of this.conns) {
      for (const seg of c.poll(now)) out.push({ src: this.addr, dst: c.tcb.remoteAddr, seg });
      const ev = c.events();
      if (ev.length) {
        let log = this.log.get(c);
        if (!log) this.log.set(c, (log = []));
        log.push(...ev);
        if (ev.includes("closed")) {
          this.table.remove(c);
          this.conns.delete(c);
        }
      }
    }
    return out;
  }

  nextDeadline(): number {
    let d = -1;
    const take = (x: number) => { if (x >= 0 && (d < 0 || x < d)) d = x; };
    for (const c of this.conns) take(c.nextDeadline());
    for (const l of this.table.listenersAll()) take(l.nextDeadline());
    return d;
  }

  /** Connections alive on this host. */
  get connections(): TcpConnection[] {
    return [...this.conns];
  }
}

export interface LinkOptions {
  seed?: number;
  /** One-way delay in ms (default 10). */
  delayMs?: number;
  /** Probability a segment is lost (each direction). */
  lossRate?: number;
  /** Probability a segment is delivered twice. */
  dupRate?: number;
  /** Probability a segment is held back by up to `reorderMs` extra, overtaking order. */
  reorderRate?: number;
  reorderMs?: number;
  /** Start time of the virtual clock (default 1000). */
  startMs?: number;
}

/** A segment on the wire, as seen by `trace`. */
export interface WireEvent extends Outgoing {
  at: number;
  fate: "sent" | "lost" | "dup";
}

export class SimLink {
  now: number;
  readonly hosts = new Map<number, SimHost>();
  readonly prng: Prng;
  /** Every segment put on the wire, with its fate. */
  readonly trace: WireEvent[] = [];
  /** Drop a segment deliberately (return true), on top of the random faults. */
  dropIf?: (o: Outgoing, now: number) => boolean;
  /** Keep `trace` (off for long transfers). */
  tracing = true;
  private queue: Array<{ at: number; n: number; o: Outgoing }> = [];
  private serial = 0;
  private readonly o: Required<LinkOptions>;

  constructor(opts: LinkOptions = {}) {
    this.o = { seed: 1, delayMs: 10, lossRate: 0, dupRate: 0, reorderRate: 0, reorderMs: 15, startMs: 1000, ...opts };
    this.prng = new Prng(this.o.seed);
    this.now = this.o.startMs;
  }

  host(addr: number, cfg: TcpConfig = {}): SimHost {
    const h = new SimHost(addr, cfg);
    this.hosts.set(addr, h);
    return h;
  }

  /** Put a segment on the wire now (tests use it to inject forged segments). */
  inject(o: Outgoing, delay = this.o.delayMs): void {
    this.enqueue(this.now + delay, o);
  }

  private enqueue(at: number, o: Outgoing): void {
    const e = { at, n: this.serial++, o };
    // Keep the queue sorted by (at, n); in-flight segments are few, so insertion is cheap.
    let i = this.queue.length;
    while (i > 0 && (this.queue[i - 1]!.at > at)) i--;
    this.queue.splice(i, 0, e);
  }

  private transmit(o: Outgoing): void {
    const p = this.prng;
    const lost = (this.dropIf?.(o, this.now) ?? false) || p.float() < this.o.lossRate;
    if (this.tracing) this.trace.push({ ...o, at: this.now, fate: lost ? "lost" : "sent" });
    if (lost) return;
    let delay = this.o.delayMs;
    if (p.float() < this.o.reorderRate) delay += 1 + Math.floor(p.float() * this.o.reorderMs);
    this.enqueue(this.now + delay, o);
    if (p.float() < this.o.dupRate) {
      if (this.tracing) this.trace.push({ ...o, at: this.now, fate: "dup" });
      this.enqueue(this.now + delay + 1 + Math.floor(p.float() * 5), o);
    }
  }

  /** One round: timers, then every host's output onto the wire. */
  private flush(): void {
    for (const h of this.hosts.values()) h.tick(this.now);
    for (const h of this.hosts.values()) for (const o of h.poll(this.now)) this.transmit(o);
  }

  /**
   * Run until `until()` holds (checked after every round), or the clock passes
   * `maxMs` from now, or nothing is left to happen. `app` runs each round (the
   * applications: write, read). Returns whether `until` was met.
   */
  run(opts: { until?: () => boolean; maxMs?: number; app?: (now: number) => void } = {}): boolean {
    const end = this.now + (opts.maxMs ?? 600_000);
    for (;;) {
      opts.app?.(this.now);
      this.flush();
      if (opts.until?.()) return true;
      let next = this.queue.length ? this.queue[0]!.at : -1;
      for (const h of this.hosts.values()) {
        const d = h.nextDeadline();
        if (d >= 0 && (next < 0 || d < next)) next = d;
      }
      if (next < 0) {
        // Idle: give the applications one more chance to produce work.
        opts.app?.(this.now);
        this.flush();
        if (opts.until?.()) return true;
        if (!this.queue.length && this.hosts.values().every((h) => h.nextDeadline() < 0)) return false;
        continue;
      }
      if (next > end) {
        this.now = end;
        return opts.until?.() ?? false;
      }
      this.now = Math.max(this.now, next);
      // Deliver one segment per round, so that each arrival is answered on its own (as
      // a real receiver does) rather than a burst collapsing into one stretch ACK.
      if (this.queue.length && this.queue[0]!.at <= this.now) {
        const { o } = this.queue.shift()!;
        this.hosts.get(o.dst)?.receive(this.now, o.seg, o.src);
      }
    }
  }

  /** Advance the clock by `ms`, processing everything on the way. */
  advance(ms: number): void {
    const end = this.now + ms;
    this.run({ maxMs: ms, until: () => false });
    this.now = Math.max(this.now, end);
  }
}

/**
 * One real connection against a scripted peer: tests write the peer's segments by
 * hand and check exactly what the connection emits (as gVisor's testing/context).
 * Sequence helpers are relative: `peerSeq(n)` is the peer's ISN + 1 + n, `ourSeq(n)`
 * the connection's ISS + 1 + n.
 */
export class Scripted {
  now: number;
  readonly c: TcpConnection;
  readonly local = { addr: 0x0a000001, port: 40000 };
  readonly remote = { addr: 0x0a000002, port: 80 };

  constructor(cfg: TcpConfig = {}, readonly iss = 1_000_000, readonly peerIss = 5_000_000, start = 1000) {
    this.now = start;
    this.c = new TcpConnection(cfg);
  }

  /**
   * Active open completed against a peer whose SYN-ACK carries `opts` and `window`.
   * Returns the SYN the connection sent and the ACK that finished the handshake.
   */
  static client(cfg: TcpConfig = {}, opts: TcpOptions = { mss: 1460 }, window = 65535): { s: Scripted; syn: TcpRepr; ack: TcpRepr } {
    const s = new Scripted(cfg);
    s.c.connect(s.now, s.local, s.remote, s.iss);
    const [syn] = s.poll();
    s.deliver({ seq: s.peerIss, ack: s.ourSeq(0), flags: TcpFlag.SYN | TcpFlag.ACK, window, options: opts });
    const [ack] = s.poll();
    s.c.events();
    return { s, syn: syn!, ack: ack! };
  }

  peerSeq(n: number): number {
    return (this.peerIss + 1 + n) >>> 0;
  }
  ourSeq(n: number): number {
    return (this.iss + 1 + n) >>> 0;
  }

  /** Deliver a peer segment; defaults: ACK of everything we sent so far, at the peer's first seq, window 65535. */
  deliver(p: Partial<TcpRepr>): void {
    const t = this.c.tcb;
    this.c.onSegment(this.now, {
      srcPort: this.remote.port, dstPort: this.local.port, seq: this.peerSeq(0), ack: t.sndMax, flags: TcpFlag.ACK,
      window: 65535, urgent: 0, options: {}, payload: new Uint8Array(0), ...p,
    });
  }

  poll(): TcpRepr[] {
    return this.c.poll(this.now);
  }

  /** Advance the clock by `ms` and run the timers. */
  tick(ms: number): void {
    this.now += ms;
    this.c.onTick(this.now);
  }

  /** Jump to the next timer deadline and run it; returns the time jumped, or -1 if no timer runs. */
  fire(): number {
    const d = this.c.nextDeadline();
    if (d < 0) return -1;
    const dt = d - this.now;
    this.now = Math.max(this.now, d);
    this.c.onTick(this.now);
    return dt;
  }
}
