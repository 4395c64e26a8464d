// The process runtime inside every worker: mailboxes to the kernel, the IPC
// primitives (send, receive, sendrec, notify), grants drained synchronously from
// a MessagePort, channels, heartbeat and the waiting protocol.
import { parentPort, receiveMessageOnPort, type MessagePort } from "node:worker_threads";
import { CORRUPT, MsgRing, ByteRing, SlotRing } from "../ipc/ring.ts";
import { Pool, PoolOwner } from "../ipc/pool.ts";
import { Doorbell, Waker } from "../ipc/doorbell.ts";
import {
  decodeMessage, encodeHeader, encodePayload, F_CALL, F_ERROR, F_REPLY, MAX_MSG, type Message,
} from "../ipc/message.ts";
import { K, KC, KERNEL, type ProcKind } from "../ipc/calls.ts";
import { EBADMSG, EINTR, EPERM, ErrnoError, ESRCH, ETIMEDOUT } from "./errno.ts";
import { PCB, PState } from "./pcb.ts";
import { gettid, loadLibc, pinThread, schedYield } from "./ffi.ts";

/** What the kernel hands a new process (its workerData). */
export interface ProcInit {
  name: string;
  ep: number;
  kind: ProcKind;
  module: string;
  args: string[];
  cpus: number[];
  generation: number;
  inbox: SharedArrayBuffer; // kernel -> process (MsgRing)
  outbox: SharedArrayBuffer; // process -> kernel (MsgRing)
  doorbell: SharedArrayBuffer; // this process's doorbell
  notify: SharedArrayBuffer; // notification bitmap, one bit per source endpoint (kernel sets, we clear)
  kernelDoorbell: SharedArrayBuffer;
  kernelPending: SharedArrayBuffer; // bitmap: endpoints with messages in their outbox
  pcb: SharedArrayBuffer;
  /** Kept by the kernel across restarts of this endpoint (lib/sys/store.ts). */
  store: SharedArrayBuffer;
  machine: SharedArrayBuffer; // machine-wide cells: [0] the dlopen lock
  endpoints: Record<string, number>;
  grants: MessagePort;
  extra: Record<string, unknown>;
}

/** A grant: a SAB given to this process, with what it is for. */
export interface Grant {
  id: number;
  sab: SharedArrayBuffer;
  meta: Record<string, unknown>;
}

/** Bounded spin before sleeping (iterations of the poll loop). */
export const SPIN_ITERS = 50;
/** Longest single sleep: also the heartbeat period of an idle process. */
export const MAX_SLEEP_MS = 50;

const napCell = new Int32Array(new SharedArrayBuffer(4));
/** Sleeps ms milliseconds without spinning. */
export function nap(ms: number): void {
  Atomics.wait(napCell, 0, 0, ms);
}

/** A notification delivered by receive(): type NOTIFY, src = the notifier. */
export const NOTIFY = -1;

export class Proc {
  readonly init: ProcInit;
  readonly name: string;
  readonly ep: number;
  readonly endpoints: Record<string, number>;
  readonly inbox: MsgRing;
  readonly outbox: MsgRing;
  readonly doorbell: Doorbell;
  readonly pcb: Int32Array;
  private readonly notifyBits: Int32Array;
  private readonly kernelWaker: Waker;
  private readonly kernelPending: Int32Array;
  private readonly deferred: Message[] = [];
  private readonly grants = new Map<number, Grant>();
  private readonly pollers: Array<() => boolean> = [];
  private nextId = 1;
  private hb = 0;
  tid = 0;
  cpus: number[] = [];
  /** Counters of this process's own IPC. */
  readonly stats = { sent: 0, received: 0, calls: 0, sleeps: 0, wakes: 0 };

  constructor(init: ProcInit) {
    this.init = init;
    this.name = init.name;
    this.ep = init.ep;
    this.endpoints = init.endpoints;
    this.inbox = new MsgRing(init.inbox, MAX_MSG);
    this.outbox = new MsgRing(init.outbox, MAX_MSG);
    this.doorbell = new Doorbell(init.doorbell);
    this.pcb = new Int32Array(init.pcb);
    this.notifyBits = new Int32Array(init.notify);
    this.kernelWaker = new Waker(init.kernelDoorbell);
    this.kernelPending = new Int32Array(init.kernelPending);
  }

  /** Loads libc (serialised), pins to the boot table's CPUs and records tid and CPU set in the PCB. */
  start(): void {
    loadLibc(new Int32Array(this.init.machine, 0, 1));
    this.tid = gettid();
    this.cpus = pinThread(this.init.cpus);
    let lo = 0;
    let hi = 0;
    for (const c of this.cpus) {
      if (c < 32) lo |= 1 << c;
      else if (c < 64) hi |= 1 << (c - 32);
    }
    Atomics.store(this.pcb, PCB.TID, this.tid);
    Atomics.store(this.pcb, PCB.CPUS_LO, lo);
    Atomics.store(this.pcb, PCB.CPUS_HI, hi);
    Atomics.store(this.pcb, PCB.STATE, PState.RUNNING);
    this.drainGrants();
    parentPort?.postMessage({ op: "ready", tid: this.tid, cpus: this.cpus });
  }

  /** Endpoint of a process by name, or throws ESRCH. */
  endpoint(name: string): number {
    const ep = this.endpoints[name];
    if (ep === undefined) throw new ErrnoError(ESRCH, `no process named ${name}`);
    return ep;
  }

  /** Shows liveness to rs. Called by every loop iteration and every wait. */
  beat(): void {
    Atomics.store(this.pcb, PCB.HEARTBEAT, ++this.hb);
  }

  log(line: string): void {
    parentPort?.postMessage({ op: "log", line: `${this.name}: ${line}` });
  }

  // ---- sending -------------------------------------------------------------

  /** Writes an encoded message to the outbox and tells the kernel. Waits (bounded) while the outbox is full. */
  private post(header: Uint8Array, body: Uint8Array): void {
    let spins = 0;
    while (!this.outbox.tryWrite(header, body)) {
      this.kick();
      this.beat();
      if (++spins > 100) nap(1); // outbox full: let the kernel drain it
    }
    this.stats.sent++;
    this.kick();
  }

  /** Tells the kernel this process's outbox has work. */
  kick(): void {
    Atomics.or(this.kernelPending, this.ep >>> 5, 1 << (this.ep & 31));
    this.kernelWaker.wake();
  }

  /** Asynchronous send: queued by the kernel if the target is busy. */
  send(dst: number, type: number, payload?: unknown, flags = 0, id = 0): void {
    const body = payload === undefined ? new Uint8Array(0) : encodePayload(payload);
    this.post(encodeHeader(dst, this.ep, type, id, flags), body);
  }

  /** Sends raw bytes as a message body (tests of the kernel's validation use this). */
  sendRaw(dst: number, type: number, body: Uint8Array, flags = 0, id = 0): void {
    this.post(encodeHeader(dst, this.ep, type, id, flags), body);
  }

  reply(to: Message, payload?: unknown): void {
    this.send(to.src, to.type, payload, F_REPLY, to.id);
  }

  replyError(to: Message, errno: number, error: string): void {
    this.send(to.src, to.type, { errno, error }, F_REPLY | F_ERROR, to.id);
  }

  /** MINIX-style notify: a non-blocking, coalescing event bit at the target. */
  notify(dst: number): void {
    this.send(dst, NOTIFY, undefined, 0, 0);
  }

  /**
   * Sends a call and blocks for its reply. Messages that arrive meanwhile are kept
   * for receive(). Throws ErrnoError for an error reply, EINTR if the target died
   * with the call, ETIMEDOUT after timeoutMs.
   */
  sendrec(dst: number, type: number, payload?: unknown, timeoutMs = 30_000): unknown {
    const id = this.nextId++;
    if (this.nextId > 0x7fffffff) this.nextId = 1;
    this.stats.calls++;
    this.send(dst, type, payload, F_CALL, id);
    const deadline = performance.now() + timeoutMs;
    let got: Message | null = null;
    Atomics.store(this.pcb, PCB.STATE, PState.BLOCKED);
    try {
      this.waitUntil(() => {
        for (;;) {
          const m = this.readInbox();
          if (!m) return false;
          if ((m.flags & F_REPLY) !== 0 && (m.id === id || m.id === -1) && (m.src === dst || m.src === KERNEL)) {
            got = m;
            return true;
          }
          if ((m.flags & F_REPLY) !== 0) continue; // a stale reply to an earlier, abandoned call
          this.deferred.push(m);
        }
      }, deadline);
    } finally {
      Atomics.store(this.pcb, PCB.STATE, PState.RUNNING);
    }
    const r = got as Message | null;
    if (!r) throw new ErrnoError(ETIMEDOUT, `sendrec to ${dst} type ${type}`);
    if ((r.flags & F_ERROR) !== 0) {
      const p = r.payload as { errno?: number; error?: string } | undefined;
      throw new ErrnoError(p?.errno ?? EBADMSG, p?.error ?? `call ${type} to ${dst}`);
    }
    return r.payload;
  }

  /** A call to the kernel. */
  kcall(type: number, payload?: unknown, timeoutMs?: number): unknown {
    return this.sendrec(KERNEL, type, payload, timeoutMs);
  }

  // ---- receiving -----------------------------------------------------------

  /** Next message without blocking, or null. Kernel control messages are handled here. */
  tryReceive(): Message | null {
    const d = this.deferred.shift();
    if (d) return d;
    const n = this.takeNotification();
    if (n) return n;
    return this.readInbox();
  }

  /** Blocks until a message arrives (or timeoutMs passes: then null). */
  receive(timeoutMs = Number.POSITIVE_INFINITY): Message | null {
    let m = this.tryReceive();
    if (m) return m;
    Atomics.store(this.pcb, PCB.STATE, PState.BLOCKED);
    this.waitUntil(() => (m = this.tryReceive()) !== null, performance.now() + timeoutMs);
    Atomics.store(this.pcb, PCB.STATE, PState.RUNNING);
    return m;
  }

  private takeNotification(): Message | null {
    for (let w = 0; w < this.notifyBits.length; w++) {
      if (Atomics.load(this.notifyBits, w) === 0) continue;
      const bits = Atomics.exchange(this.notifyBits, w, 0);
      for (let b = 0; b < 32; b++) {
        if ((bits >>> b) & 1) {
          const m: Message = { dst: this.ep, src: w * 32 + b, type: NOTIFY, id: 0, flags: 0, payload: undefined };
          // more bits of this word: put them back for the next call
          const rest = bits & ~((2 << b) - 1);
          if (rest) Atomics.or(this.notifyBits, w, rest);
          return m;
        }
      }
    }
    return null;
  }

  /** Reads and decodes the next inbox message; handles kernel control messages itself. */
  private readInbox(): Message | null {
    for (;;) {
      const raw = this.inbox.tryRead();
      if (raw === null) return null;
      if (raw === CORRUPT) continue; // only the kernel writes our inbox: cannot happen short of a kernel bug
      const d = decodeMessage(raw);
      if (!d.ok) continue;
      const m = d.msg;
      this.stats.received++;
      if (m.src === KERNEL && (m.flags & F_REPLY) === 0 && this.control(m)) continue;
      return m;
    }
  }

  /** Kernel control messages; returns true if consumed. */
  private control(m: Message): boolean {
    switch (m.type) {
      case KC.HANG:
        this.hang();
        return true;
      case KC.SHUTDOWN:
        Atomics.store(this.pcb, PCB.STATE, PState.EXITED);
        process.exit(0);
        return true;
      case KC.CHANNEL:
        this.drainGrants();
        return false; // the process sees it too
      default:
        return false;
    }
  }

  /** Fault injection: stop answering and stop the heartbeat, until terminated. */
  hang(): never {
    Atomics.store(this.pcb, PCB.STATE, PState.HUNG);
    const cell = new Int32Array(new SharedArrayBuffer(4));
    for (;;) Atomics.wait(cell, 0, 0, 100); // finite waits: Bun can terminate us between them
  }

  // ---- waiting -------------------------------------------------------------

  /** Registers a poller: a function that returns true when it found work (a channel with data). */
  addPoller(p: () => boolean): void {
    this.pollers.push(p);
  }

  hasWork(): boolean {
    if (this.deferred.length > 0 || !this.inbox.isEmpty()) return true;
    for (let w = 0; w < this.notifyBits.length; w++) if (Atomics.load(this.notifyBits, w) !== 0) return true;
    return false;
  }

  /**
   * The waiting protocol: poll `done` in a bounded spin (yielding the CPU now and
   * then, since servers may share a core), then sleep on the doorbell with a finite
   * timeout, beating the heart at every turn. Returns when done() or at the deadline.
   */
  waitUntil(cond: () => boolean, deadline: number, spin = SPIN_ITERS): boolean {
    // cond may consume what it finds (a message), so once true it must stay true:
    // the sleep's re-check and the loop below may both call it.
    let fired = false;
    const done = () => fired || (fired = cond());
    for (let i = 0; i < spin; i++) {
      if (done()) return true;
      if ((i & 255) === 255) {
        this.beat();
        schedYield();
      }
    }
    for (;;) {
      this.beat();
      if (done()) return true;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      this.drainGrants();
      this.stats.sleeps++;
      if (this.doorbell.sleep(() => this.hasWork() || done(), Math.min(MAX_SLEEP_MS, left))) {
        this.stats.wakes++;
        Atomics.store(this.pcb, PCB.WAKES, this.stats.wakes);
      }
    }
  }

  /** Sleeps until any message, poller work, or timeoutMs. */
  idle(timeoutMs: number): void {
    if (timeoutMs <= 0) return;
    Atomics.store(this.pcb, PCB.STATE, PState.BLOCKED);
    this.beat();
    this.drainGrants();
    this.stats.sleeps++;
    const ready = () => {
      if (this.hasWork()) return true;
      for (const p of this.pollers) if (p()) return true;
      return false;
    };
    if (this.doorbell.sleep(ready, Math.min(MAX_SLEEP_MS, timeoutMs))) {
      this.stats.wakes++;
      Atomics.store(this.pcb, PCB.WAKES, this.stats.wakes);
    }
    Atomics.store(this.pcb, PCB.STATE, PState.RUNNING);
  }

  // ---- grants and channels ---------------------------------------------------

  /** Takes every pending grant from the kernel's MessagePort, synchronously. */
  drainGrants(): void {
    for (;;) {
      const r = receiveMessageOnPort(this.init.grants);
      if (!r) return;
      const g = r.message as Grant;
      if (g && g.sab instanceof SharedArrayBuffer) this.grants.set(g.id, g);
    }
  }

  /** The first grant received so far (pending ones drained) that pred accepts. */
  findGrant(pred: (g: Grant) => boolean): Grant | undefined {
    this.drainGrants();
    for (const g of this.grants.values()) if (pred(g)) return g;
    return undefined;
  }

  /** A grant by id, waiting briefly for it to arrive on the port. */
  grant(id: number): Grant {
    const deadline = performance.now() + 1000;
    for (;;) {
      this.drainGrants();
      const g = this.grants.get(id);
      if (g) return g;
      if (performance.now() > deadline) throw new ErrnoError(EINTR, `grant ${id} never arrived`);
      this.beat();
      nap(1);
    }
  }

  /** Opens a channel to `peer` through the kernel; afterwards the kernel is not involved. */
  openChannel(peer: number, opts: ChannelOpts): Channel {
    const r = this.kcall(K.CHAN_OPEN, { peer, ...opts }) as ChannelInfo;
    return this.attachChannel(r);
  }

  /**
   * Shares a SAB this process made with another process (a socket arena with an
   * app). Returns the grant id the receiver will find it under; throws EPERM or
   * ESRCH when the kernel refuses.
   */
  grantTo(to: number, sab: SharedArrayBuffer, meta: Record<string, unknown> = {}): number {
    const req = this.nextId++;
    parentPort?.postMessage({ op: "grant", req, to, sab, meta });
    const deadline = performance.now() + 2000;
    for (;;) {
      const r = receiveMessageOnPort(this.init.grants);
      if (r) {
        const m = r.message as { req?: number; granted?: number; id?: number; denied?: number; errno?: number; error?: string; sab?: unknown };
        if (m.req === req && m.granted !== undefined) return m.id!;
        if (m.req === req && m.denied !== undefined) throw new ErrnoError(m.errno ?? EPERM, m.error ?? "grant refused");
        const g = m as unknown as Grant;
        if (g.sab instanceof SharedArrayBuffer) this.grants.set(g.id, g); // an ordinary grant meanwhile
        continue;
      }
      if (performance.now() > deadline) throw new ErrnoError(ETIMEDOUT, "the kernel did not answer a grant");
      this.beat();
      nap(1);
    }
  }

  /** A packet pool owned by this process and lent to `share` (endpoints in its ACL). */
  createPool(count: number, bufSize: number, share: number[]): PoolOwner {
    const info = this.kcall(K.POOL_CREATE, { count, bufSize, share }) as PoolInfo;
    return new PoolOwner(info.pool, this.grant(info.grant).sab, this.ep, true);
  }

  /** Attaches a pool the kernel announced (KC.POOL) or gave back after a restart. */
  attachPool(info: PoolInfo): Pool | PoolOwner {
    const sab = this.grant(info.grant).sab;
    return info.owner === this.ep ? new PoolOwner(info.pool, sab, this.ep, false) : new Pool(info.pool, sab);
  }

  /** Channels and pools of earlier generations (empty on a first start). */
  restored(): Restored {
    return (this.init.extra.resources as Restored | undefined) ?? [];
  }

  /** Attaches to a channel the kernel announced (KC.CHANNEL payload) or returned. */
  attachChannel(info: ChannelInfo): Channel {
    const tx = this.grant(info.txGrant).sab;
    const rx = this.grant(info.rxGrant).sab;
    const peerBell = this.grant(info.peerDoorbellGrant).sab;
    return new Channel(info, tx, rx, new Waker(peerBell));
  }
}

/** A pool as its owner and users see it (grant: the grant id that carries its SAB). */
export interface PoolInfo {
  pool: number;
  owner: number;
  grant: number;
}

/** What a restarted process gets back from its earlier generations (docs/design.md §6). */
export type Restored = Array<
  | { kind: "chan"; info: ChannelInfo }
  | { kind: "pool"; info: PoolInfo }
  /** Memory this process had granted to `to`: it gets its own grant of it back. */
  | { kind: "sab"; to: number; meta: Record<string, unknown>; grant: number }
>;

export interface ChannelOpts {
  kind: "stream" | "slots";
  /** stream: ring bytes (power of two). */
  bytes?: number;
  /** slots: slot count (power of two) and slot size (multiple of 4). */
  slots?: number;
  slotSize?: number;
}

export interface ChannelInfo extends ChannelOpts {
  chan: number;
  peer: number;
  txGrant: number;
  rxGrant: number;
  peerDoorbellGrant: number;
}

/** Both directions of a channel as seen from one end. */
export class Channel {
  readonly info: ChannelInfo;
  readonly tx: MsgRing | SlotRing;
  readonly rx: MsgRing | SlotRing;
  readonly peer: Waker;
  wakes = 0;
  constructor(info: ChannelInfo, tx: SharedArrayBuffer, rx: SharedArrayBuffer, peer: Waker) {
    this.info = info;
    this.tx = info.kind === "stream" ? new MsgRing(tx) : new SlotRing(tx);
    this.rx = info.kind === "stream" ? new MsgRing(rx) : new SlotRing(rx);
    this.peer = peer;
  }
  /** Wakes the peer if it sleeps (call after producing). */
  kick(): void {
    if (this.peer.wake()) this.wakes++;
  }
}

export { ByteRing, SlotRing, MsgRing, ErrnoError, ESRCH };
