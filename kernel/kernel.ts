// The kernel worker: process table, IPC routing with permission checks, grants,
// channels, process start, kill and restart. It runs an event-loop-friendly
// polling loop so that worker `error`/`exit` events and the machine's requests
// reach it between rounds.
import { MessageChannel, parentPort, Worker, workerData, type MessagePort } from "node:worker_threads";
import { CORRUPT, createByteRingBuffer, createSlotRingBuffer, MsgRing } from "../lib/ipc/ring.ts";
import { createPool } from "../lib/ipc/pool.ts";
import { STORE_BYTES } from "../lib/sys/store.ts";
import { loadLibc } from "../lib/sys/ffi.ts";
import { createDoorbell, Doorbell, Waker } from "../lib/ipc/doorbell.ts";
import {
  decodeHeader, decodeMessage, encodeMessage, F_CALL, F_ERROR, F_REPLY, MAX_MSG, stampSource, type Message,
} from "../lib/ipc/message.ts";
import { K, KC, KERNEL, MAX_ENDPOINTS, NET, PING, SRV_CTL } from "../lib/ipc/calls.ts";
import { EAGAIN, EBADMSG, EINTR, EINVAL, EMSGSIZE, ENOSYS, EPERM, ESRCH } from "../lib/sys/errno.ts";
import { NOTIFY, type ChannelInfo, type ChannelOpts, type PoolInfo, type ProcInit, type Restored } from "../lib/sys/proc.ts";
import { cpuListFromMask, PCB, PCB_BYTES, PSTATE_NAMES } from "../lib/sys/pcb.ts";
import { createKinfo, KI, kinfoSet } from "../lib/sys/kinfo.ts";
import { appEntry, kcallsOf, type BootEntry } from "./table.ts";
import { procSockStats, type ProcSockStats } from "../lib/sys/counters.ts";

export interface KernelInit {
  root: string;
  servers: BootEntry[];
  apps: BootEntry[];
  machine: SharedArrayBuffer;
  cpusAllowed: number[];
  /** Per-server configuration from the command line (the wire for nic, addresses for ip, rules for pf). */
  config: Record<string, Record<string, unknown>>;
  release: string;
  bootEpochMs: number;
}

/** A row of `ps`. */
export interface ProcRow {
  ep: number;
  name: string;
  kind: string;
  pid: number;
  tid: number;
  cpus: number[];
  state: string;
  generation: number;
  restarts: number;
  msgsIn: number;
  msgsOut: number;
  wakes: number;
  denied: number;
  rejected: number;
  exitStatus?: number;
}

const MAILBOX_BYTES = 64 * 1024;
/** Messages the kernel holds for a process whose inbox is full (or that is restarting). */
const BACKLOG_MAX = 4096;
/** Messages taken from one outbox per round, so one process cannot starve the others. */
const OUTBOX_BUDGET = 64;
const KERNEL_SPIN = 200;
const KERNEL_SLEEP_MS = 20;
const READY_TIMEOUT_MS = 15_000;

type SlotState = "new" | "starting" | "running" | "dead" | "restarting" | "exited";

interface Slot {
  ep: number;
  entry: BootEntry;
  ipc: Set<number>;
  kcalls: Set<number>;
  worker: Worker | null;
  gen: number;
  pid: number;
  state: SlotState;
  restarts: number;
  inbox: MsgRing | null;
  outbox: MsgRing | null;
  doorbellSab: SharedArrayBuffer;
  waker: Waker;
  notifySab: SharedArrayBuffer;
  notifyBits: Int32Array;
  pcbSab: SharedArrayBuffer;
  pcb: Int32Array;
  /** Survives restarts: the server's own snapshot of what it must not lose. */
  storeSab: SharedArrayBuffer;
  grantPort: MessagePort | null;
  backlog: Uint8Array[];
  pendingCall: { target: number; id: number } | null;
  msgsIn: number;
  msgsOut: number;
  denied: number;
  rejected: number;
  tid: number;
  cpus: number[];
  lastError?: string;
  exitStatus?: number;
  onExit: Array<() => void>;
  onReady: Array<(err?: Error) => void>;
  /** Channels and pools this process holds: re-granted to each new generation (design §6). */
  resources: Resource[];
  /** Grants made before the process was started: posted when its grant port exists. */
  earlyGrants: Array<{ id: number; sab: SharedArrayBuffer; meta: Record<string, unknown> }>;
}

/** What survives a process's restart: the shared memory it was given. */
type Resource =
  | { kind: "chan"; chan: number; peer: number; opts: ChannelOpts; tx: SharedArrayBuffer; rx: SharedArrayBuffer; peerDoorbell: SharedArrayBuffer }
  | { kind: "pool"; pool: number; owner: number; sab: SharedArrayBuffer }
  /** Memory this process made and granted to `to` (socket arenas). */
  | { kind: "sab"; to: number; sab: SharedArrayBuffer; meta: Record<string, unknown> };


class Kernel {
  readonly init: KernelInit;
  readonly slots: (Slot | undefined)[] = new Array(MAX_ENDPOINTS);
  readonly byName = new Map<string, number>();
  readonly doorbellSab = createDoorbell();
  readonly doorbell = new Doorbell(this.doorbellSab);
  readonly pendingSab = new SharedArrayBuffer(MAX_ENDPOINTS / 8);
  readonly pending = new Int32Array(this.pendingSab);
  readonly kinfoSab = createKinfo();
  readonly kinfo = new Int32Array(this.kinfoSab);
  private nextPid = 1;
  private nextGrant = 1;
  private nextChan = 1;
  private nextKid = 1;
  private nextPool = 1;
  private readonly kernelCalls = new Map<number, (m: Message) => void>();
  private stopping = false;
  private stats = { routed: 0, rejected: 0, denied: 0, rounds: 0, sleeps: 0 };

  constructor(init: KernelInit) {
    this.init = init;
  }

  private host(msg: unknown): void {
    parentPort?.postMessage(msg);
  }

  log(line: string): void {
    this.host({ op: "log", line });
  }

  // ---- process table ---------------------------------------------------------

  private addSlot(entry: BootEntry): Slot {
    let ep = 1;
    while (ep < MAX_ENDPOINTS && this.slots[ep]) ep++;
    if (ep >= MAX_ENDPOINTS) throw new Error("process table full");
    const doorbellSab = createDoorbell();
    const notifySab = new SharedArrayBuffer(MAX_ENDPOINTS / 8);
    const pcbSab = new SharedArrayBuffer(PCB_BYTES);
    const slot: Slot = {
      ep, entry, ipc: new Set(), kcalls: kcallsOf(entry), worker: null, gen: -1, pid: 0, state: "new", restarts: 0,
      inbox: null, outbox: null, doorbellSab, waker: new Waker(doorbellSab), notifySab,
      notifyBits: new Int32Array(notifySab), pcbSab, pcb: new Int32Array(pcbSab),
      storeSab: new SharedArrayBuffer(entry.kind === "server" ? STORE_BYTES : 64), grantPort: null, backlog: [],
      pendingCall: null, msgsIn: 0, msgsOut: 0, denied: 0, rejected: 0, tid: 0, cpus: [], onExit: [], onReady: [], resources: [], earlyGrants: [],
    };
    this.slots[ep] = slot;
    this.byName.set(entry.name, ep);
    for (const a of entry.aliases ?? []) this.byName.set(a, ep);
    return slot;
  }

  /** Resolves names in every ACL (done after all boot entries have endpoints). */
  private resolveAcl(slot: Slot): void {
    slot.ipc = new Set(slot.entry.ipc.map((n) => this.byName.get(n)).filter((e): e is number => e !== undefined));
  }

  private endpointsMap(): Record<string, number> {
    return Object.fromEntries(this.byName);
  }

  private cpusFor(entry: BootEntry): number[] {
    const allowed = this.init.cpusAllowed.length > 0 ? this.init.cpusAllowed : [0];
    return [allowed[entry.cpu % allowed.length]!];
  }

  /** Starts a new generation of a slot's process; resolves when it has pinned itself. */
  private spawn(slot: Slot, extra: Record<string, unknown> = {}): Promise<void> {
    slot.gen++;
    slot.pid = this.nextPid++;
    slot.state = "starting";
    slot.inbox = new MsgRing(createByteRingBuffer(MAILBOX_BYTES), MAX_MSG);
    const outboxSab = createByteRingBuffer(MAILBOX_BYTES);
    slot.outbox = new MsgRing(outboxSab, MAX_MSG);
    slot.notifyBits.fill(0);
    slot.pcb.fill(0);
    Atomics.store(slot.pcb, PCB.GEN, slot.gen);
    slot.pendingCall = null;
    slot.lastError = undefined;
    kinfoSet(this.kinfo, slot.ep, KI.PID, slot.pid);
    kinfoSet(this.kinfo, slot.ep, KI.PPID, 0);
    kinfoSet(this.kinfo, slot.ep, KI.GEN, slot.gen);
    kinfoSet(this.kinfo, slot.ep, KI.ALIVE, 1);
    const { port1, port2 } = new MessageChannel();
    slot.grantPort?.close();
    slot.grantPort = port1;
    for (const g of slot.earlyGrants.splice(0)) port1.postMessage(g);
    const init: ProcInit = {
      name: slot.entry.name,
      ep: slot.ep,
      kind: slot.entry.kind,
      module: new URL(slot.entry.module, `file://${this.init.root}/`).pathname,
      args: slot.entry.args ?? [],
      cpus: this.cpusFor(slot.entry),
      generation: slot.gen,
      inbox: slot.inbox.ring.sab,
      outbox: outboxSab,
      doorbell: slot.doorbellSab,
      notify: slot.notifySab,
      kernelDoorbell: this.doorbellSab,
      kernelPending: this.pendingSab,
      pcb: slot.pcbSab,
      store: slot.storeSab,
      machine: this.init.machine,
      endpoints: this.endpointsMap(),
      grants: port2,
      extra: { ...this.extraFor(slot), ...extra },
    };
    // A restarted process gets back the channels and pools of its earlier generations.
    init.extra.resources = this.regrant(slot);
    const gen = slot.gen;
    const w = new Worker(new URL("../lib/sys/crt0.ts", import.meta.url), {
      workerData: init,
      transferList: [port2],
      name: `${slot.entry.name}#${gen}`,
    } as ConstructorParameters<typeof Worker>[1]);
    slot.worker = w;
    w.on("message", (m: { op?: string; tid?: number; cpus?: number[]; line?: string; req?: number; to?: number; sab?: unknown; meta?: unknown }) => {
      if (slot.gen !== gen) return;
      if (m.op === "grant") {
        this.grantFrom(slot, m.req ?? 0, Number(m.to), m.sab, m.meta);
        return;
      }
      if (m.op === "ready") {
        slot.tid = m.tid ?? 0;
        slot.cpus = m.cpus ?? [];
        slot.state = "running";
        this.log(
          `[boot] ep ${String(slot.ep).padStart(2)} ${slot.entry.name.padEnd(8)} ${slot.entry.kind.padEnd(6)} ` +
            `gen ${gen} pid ${slot.pid} tid ${slot.tid} cpu ${init.cpus.join(",")} -> sched_getaffinity {${slot.cpus.join(",")}}`,
        );
        this.flushBacklog(slot);
        if (gen > 0) this.tellPeers(slot);
        for (const f of slot.onReady.splice(0)) f();
      } else if (m.op === "log" && typeof m.line === "string") {
        this.log(m.line);
      }
    });
    w.on("error", (e: Error) => {
      if (slot.gen === gen) slot.lastError = `${e.name}: ${e.message}`;
    });
    w.on("exit", (code: number) => this.onExit(slot, gen, code));
    return new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${slot.entry.name} did not start within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
      slot.onReady.push((err) => {
        clearTimeout(t);
        if (err) reject(err);
        else resolve();
      });
    });
  }

  /** Grants given to particular servers at start. */
  private extraFor(slot: Slot): Record<string, unknown> {
    const cfg = this.init.config[slot.entry.name] ?? {};
    return { ...cfg, ...this.kernelExtraFor(slot) };
  }

  private kernelExtraFor(slot: Slot): Record<string, unknown> {
    if (slot.entry.name === "syscall") {
      return { kinfo: this.kinfoSab, bootEpochMs: this.init.bootEpochMs, release: this.init.release };
    }
    if (slot.entry.name === "rs") {
      const watch = [];
      for (const s of this.slots) if (s && s.entry.kind === "server" && s !== slot) watch.push({ ep: s.ep, name: s.entry.name, pcb: s.pcbSab });
      return { watch };
    }
    return {};
  }

  private onExit(slot: Slot, gen: number, code: number): void {
    if (slot.gen !== gen) return;
    const wasStarting = slot.state === "starting";
    const wasRestarting = slot.state === "restarting";
    slot.worker = null;
    kinfoSet(this.kinfo, slot.ep, KI.ALIVE, 0);
    // Callers blocked on the dead process get EINTR; its queued requests go with it.
    for (const s of this.slots) {
      if (s && s.pendingCall && s.pendingCall.target === slot.ep) {
        const id = s.pendingCall.id;
        s.pendingCall = null;
        this.errorTo(s, id, 0, EINTR, `${slot.entry.name} died during the call`);
      }
    }
    slot.pendingCall = null;
    slot.backlog = [];
    if (slot.entry.kind === "app") slot.state = "exited";
    else slot.state = wasRestarting ? "restarting" : "dead";
    for (const f of slot.onExit.splice(0)) f();
    if (wasStarting) for (const f of slot.onReady.splice(0)) f(new Error(`${slot.entry.name} exited during start (code ${code}) ${slot.lastError ?? ""}`));
    if (this.stopping || wasRestarting) return;
    if (slot.entry.kind === "app") {
      this.host({ op: "app-exit", name: slot.entry.name, ep: slot.ep, status: slot.exitStatus ?? code, error: slot.lastError });
      // The syscall server closes whatever sockets the app left open.
      const sys = this.byName.get("syscall");
      const ss = sys === undefined ? undefined : this.slots[sys];
      if (ss) this.deliver(ss, encodeMessage({ dst: ss.ep, src: KERNEL, type: NET.APP_EXITED, id: 0, flags: 0 }, { app: slot.ep }));
      return;
    }
    const why = slot.lastError ? `crashed: ${slot.lastError}` : `exited with code ${code}`;
    this.log(`[kernel] ${slot.entry.name} (ep ${slot.ep}, gen ${gen}) ${why}`);
    const rs = this.byName.get("rs");
    if (slot.entry.name === "rs" || rs === undefined) {
      // Nobody supervises the supervisor but the kernel.
      setTimeout(() => void this.restart(slot.ep, "rs died").catch((e) => this.log(`[kernel] ${e}`)), 100);
      return;
    }
    const payload = { ep: slot.ep, name: slot.entry.name, generation: gen, code, error: slot.lastError };
    this.deliver(this.slots[rs]!, encodeMessage({ dst: rs, src: KERNEL, type: KC.EXITED, id: 0, flags: 0 }, payload));
  }

  /** Terminates a process (if alive) and starts its next generation. */
  async restart(ep: number, reason: string): Promise<void> {
    const slot = this.slots[ep];
    if (!slot || slot.entry.kind !== "server") throw new Error(`no server at endpoint ${ep}`);
    if (this.stopping) return;
    if (slot.worker) {
      slot.state = "restarting";
      const gone = new Promise<void>((r) => slot.onExit.push(r));
      void slot.worker.terminate();
      await gone;
    }
    slot.restarts++;
    this.log(`[kernel] restarting ${slot.entry.name} (ep ${ep}): ${reason}; restart #${slot.restarts}`);
    await this.spawn(slot);
  }

  kill(ep: number): void {
    const slot = this.slots[ep];
    if (slot?.worker) void slot.worker.terminate();
  }

  // ---- IPC -----------------------------------------------------------------

  /** Puts a message into a process's inbox (or its backlog) and wakes it. */
  private deliver(target: Slot, bytes: Uint8Array): boolean {
    if (target.backlog.length > 0 || target.state !== "running" || !target.inbox || !target.inbox.tryWrite(bytes)) {
      if (target.backlog.length >= BACKLOG_MAX) return false;
      target.backlog.push(bytes);
      return true;
    }
    target.msgsIn++;
    target.waker.wake();
    return true;
  }

  private flushBacklog(target: Slot): boolean {
    if (target.backlog.length === 0 || target.state !== "running" || !target.inbox) return false;
    let n = 0;
    while (n < target.backlog.length && target.inbox.tryWrite(target.backlog[n]!)) n++;
    if (n > 0) {
      target.backlog.splice(0, n);
      target.msgsIn += n;
      target.waker.wake();
    }
    return n > 0;
  }

  private errorTo(slot: Slot, id: number, type: number, errno: number, error: string): void {
    if (slot.state !== "running" && slot.state !== "starting") return;
    this.deliver(slot, encodeMessage({ dst: slot.ep, src: KERNEL, type, id, flags: F_REPLY | F_ERROR }, { errno, error }));
  }

  private replyTo(slot: Slot, m: Message, payload: unknown): void {
    this.deliver(slot, encodeMessage({ dst: slot.ep, src: KERNEL, type: m.type, id: m.id, flags: F_REPLY }, payload));
  }

  /** Drains one process's outbox (bounded). Returns messages handled. */
  private drainOutbox(from: Slot): number {
    if (!from.outbox || (from.state !== "running" && from.state !== "starting")) return 0;
    let n = 0;
    for (; n < OUTBOX_BUDGET; n++) {
      const raw = from.outbox.tryRead();
      if (raw === null) break;
      if (raw === CORRUPT) {
        // A length prefix over the limit or an impossible index: the ring is resynchronised.
        from.rejected++;
        this.stats.rejected++;
        this.errorTo(from, -1, 0, EMSGSIZE, `outbox corrupt or message over ${MAX_MSG} bytes: dropped`);
        continue;
      }
      this.route(from, raw);
    }
    if (n === OUTBOX_BUDGET) Atomics.or(this.pending, from.ep >>> 5, 1 << (from.ep & 31));
    return n;
  }

  private route(from: Slot, raw: Uint8Array): void {
    const h = decodeHeader(raw);
    if (!h) {
      from.rejected++;
      this.stats.rejected++;
      this.errorTo(from, -1, 0, EBADMSG, `message of ${raw.length} bytes is shorter than its header`);
      return;
    }
    from.msgsOut++;
    stampSource(raw, from.ep);
    const d = decodeMessage(raw);
    if (!d.ok) {
      from.rejected++;
      this.stats.rejected++;
      if ((h.flags & F_CALL) !== 0 || h.id !== 0) this.errorTo(from, h.id, h.type, EBADMSG, d.error);
      return;
    }
    const m = d.msg;
    m.src = from.ep;
    if (m.dst === KERNEL) {
      if ((m.flags & F_REPLY) !== 0) {
        const cb = this.kernelCalls.get(m.id);
        if (cb) {
          this.kernelCalls.delete(m.id);
          cb(m);
        }
        return;
      }
      this.kcall(from, m);
      return;
    }
    const target = m.dst >= 0 && m.dst < MAX_ENDPOINTS ? this.slots[m.dst] : undefined;
    if ((m.flags & F_REPLY) !== 0) {
      // A reply goes only to a caller that waits for exactly this call.
      if (target && target.pendingCall && target.pendingCall.target === from.ep && target.pendingCall.id === m.id) {
        target.pendingCall = null;
        this.deliver(target, raw);
        this.stats.routed++;
      }
      return;
    }
    const isCall = (m.flags & F_CALL) !== 0;
    if (!from.ipc.has(m.dst)) {
      from.denied++;
      this.stats.denied++;
      if (isCall || m.type !== NOTIFY) this.errorTo(from, m.id, m.type, EPERM, `${from.entry.name} may not call endpoint ${m.dst}`);
      return;
    }
    if (!target || target.state === "exited" || target.state === "new") {
      if (isCall) this.errorTo(from, m.id, m.type, ESRCH, `no process at endpoint ${m.dst}`);
      return;
    }
    if (m.type === NOTIFY) {
      Atomics.or(target.notifyBits, from.ep >>> 5, 1 << (from.ep & 31));
      target.waker.wake();
      return;
    }
    if (isCall) from.pendingCall = { target: m.dst, id: m.id };
    if (!this.deliver(target, raw)) {
      if (isCall) {
        from.pendingCall = null;
        this.errorTo(from, m.id, m.type, EAGAIN, `${target.entry.name} has ${BACKLOG_MAX} messages queued`);
      }
      return;
    }
    this.stats.routed++;
  }

  // ---- kernel calls ----------------------------------------------------------

  private kcall(from: Slot, m: Message): void {
    const isCall = (m.flags & F_CALL) !== 0;
    if (!from.kcalls.has(m.type)) {
      from.denied++;
      this.stats.denied++;
      if (isCall) this.errorTo(from, m.id, m.type, EPERM, `${from.entry.name} may not make kernel call ${m.type}`);
      return;
    }
    const ok = (payload: unknown) => {
      if (isCall) this.replyTo(from, m, payload);
    };
    const fail = (errno: number, error: string) => {
      if (isCall) this.errorTo(from, m.id, m.type, errno, error);
    };
    const p = (m.payload ?? {}) as Record<string, unknown>;
    switch (m.type) {
      case K.EXIT: {
        from.exitStatus = Number(p.status) || 0;
        if (from.entry.kind === "app") {
          this.host({ op: "app-result", name: from.entry.name, ep: from.ep, status: from.exitStatus, result: p.result, error: p.error });
        }
        void from.worker?.terminate();
        return;
      }
      case K.LOG:
        this.log(`${from.entry.name}: ${String(p.line)}`);
        return ok(0);
      case K.WHOIS: {
        const ep = this.byName.get(String(p.name));
        return ep === undefined ? fail(ESRCH, `no process named ${String(p.name)}`) : ok(ep);
      }
      case K.PROCS:
        return ok(this.ps());
      case K.KILL: {
        const ep = Number(p.ep);
        if (!this.slots[ep]) return fail(ESRCH, `no process at endpoint ${ep}`);
        this.kill(ep);
        return ok(0);
      }
      case K.RESTART: {
        const ep = Number(p.ep);
        if (!this.slots[ep] || this.slots[ep]!.entry.kind !== "server") return fail(ESRCH, `no server at endpoint ${ep}`);
        // Reply once the old generation is gone and the new one is starting.
        const slot = this.slots[ep]!;
        const started = this.restart(ep, String(p.reason ?? "requested"));
        const answered = new Promise<void>((r) => (slot.state === "starting" ? r() : slot.onReady.push(() => r())));
        void Promise.race([started, answered]).then(() => ok(0), (e: Error) => fail(EINVAL, e.message));
        return;
      }
      case K.SPAWN: {
        this.spawnApp(String(p.name), Array.isArray(p.args) ? p.args.map(String) : []).then(
          (ep) => ok(ep),
          (e: Error) => fail(EINVAL, e.message),
        );
        return;
      }
      case K.CHAN_OPEN:
        return this.openChannel(from, p, ok, fail);
      case K.POOL_CREATE:
        return this.createPool(from, p, ok, fail);
      default:
        return fail(ENOSYS, `no kernel call ${m.type}`);
    }
  }

  private grant(to: Slot, sab: SharedArrayBuffer, meta: Record<string, unknown>): number {
    const id = this.nextGrant++;
    if (to.grantPort) to.grantPort.postMessage({ id, sab, meta });
    else to.earlyGrants.push({ id, sab, meta }); // not started yet: given with its first port
    return id;
  }

  private openChannel(from: Slot, p: Record<string, unknown>, ok: (x: unknown) => void, fail: (e: number, s: string) => void): void {
    const peerEp = Number(p.peer);
    const peer = this.slots[peerEp];
    if (!peer || !from.ipc.has(peerEp)) return fail(peer ? EPERM : ESRCH, `channel to endpoint ${peerEp} refused`);
    const kind: "slots" | "stream" = p.kind === "slots" ? "slots" : "stream";
    let a: SharedArrayBuffer;
    let b: SharedArrayBuffer;
    try {
      if (kind === "stream") {
        const bytes = Number(p.bytes ?? 64 * 1024);
        a = createByteRingBuffer(bytes);
        b = createByteRingBuffer(bytes);
      } else {
        const slots = Number(p.slots ?? 256);
        const slotSize = Number(p.slotSize ?? 16);
        a = createSlotRingBuffer(slots, slotSize);
        b = createSlotRingBuffer(slots, slotSize);
      }
    } catch (e) {
      return fail(EINVAL, (e as Error).message);
    }
    const chan = this.nextChan++;
    const opts: ChannelOpts = { kind, bytes: p.bytes as number | undefined, slots: p.slots as number | undefined, slotSize: p.slotSize as number | undefined };
    const mine: ChannelInfo = {
      ...opts, chan, peer: peerEp,
      txGrant: this.grant(from, a, { chan, role: "tx" }),
      rxGrant: this.grant(from, b, { chan, role: "rx" }),
      peerDoorbellGrant: this.grant(from, peer.doorbellSab, { chan, role: "peer-doorbell" }),
    };
    const theirs: ChannelInfo = {
      ...opts, chan, peer: from.ep,
      txGrant: this.grant(peer, b, { chan, role: "tx" }),
      rxGrant: this.grant(peer, a, { chan, role: "rx" }),
      peerDoorbellGrant: this.grant(peer, from.doorbellSab, { chan, role: "peer-doorbell" }),
    };
    from.resources.push({ kind: "chan", chan, peer: peerEp, opts, tx: a, rx: b, peerDoorbell: peer.doorbellSab });
    peer.resources.push({ kind: "chan", chan, peer: from.ep, opts, tx: b, rx: a, peerDoorbell: from.doorbellSab });
    this.deliver(peer, encodeMessage({ dst: peerEp, src: KERNEL, type: KC.CHANNEL, id: 0, flags: 0 }, theirs));
    ok(mine);
  }

  /** A packet pool owned by the caller and lent to the endpoints in `share` (each must be in its ACL). */
  private createPool(from: Slot, p: Record<string, unknown>, ok: (x: unknown) => void, fail: (e: number, s: string) => void): void {
    const share = Array.isArray(p.share) ? p.share.map(Number) : [];
    for (const ep of share) {
      if (!this.slots[ep]) return fail(ESRCH, `no process at endpoint ${ep}`);
      if (!from.ipc.has(ep)) return fail(EPERM, `${from.entry.name} may not share memory with endpoint ${ep}`);
    }
    let sab: SharedArrayBuffer;
    try {
      sab = createPool(Number(p.count ?? 1024), Number(p.bufSize ?? 2048));
    } catch (e) {
      return fail(EINVAL, (e as Error).message);
    }
    const pool = this.nextPool++;
    from.resources.push({ kind: "pool", pool, owner: from.ep, sab });
    for (const ep of share) {
      const peer = this.slots[ep]!;
      peer.resources.push({ kind: "pool", pool, owner: from.ep, sab });
      const info: PoolInfo = { pool, owner: from.ep, grant: this.grant(peer, sab, { pool }) };
      this.deliver(peer, encodeMessage({ dst: ep, src: KERNEL, type: KC.POOL, id: 0, flags: 0 }, info));
    }
    const mine: PoolInfo = { pool, owner: from.ep, grant: this.grant(from, sab, { pool }) };
    ok(mine);
  }

  /**
   * A process shares memory it made (a socket arena) with another: the SAB comes
   * over the worker's message port (IPC messages cannot carry one). A server may
   * grant to the endpoints in its ACL and, with K.GRANT_APP, to any app. The
   * answer goes back on the process's own grant port: { granted: req, id } or
   * { denied: req, errno, error }. The grantor keeps the SAB as a resource, so
   * its next generation gets it back.
   */
  private grantFrom(from: Slot, req: number, to: number, sab: unknown, meta: unknown): void {
    const answer = (x: Record<string, unknown>) => from.grantPort?.postMessage({ ...x, req });
    const target = this.slots[to];
    if (!(sab instanceof SharedArrayBuffer)) return answer({ denied: req, errno: EINVAL, error: "not a SharedArrayBuffer" });
    if (!target || target.state === "exited") return answer({ denied: req, errno: ESRCH, error: `no process at endpoint ${to}` });
    const mayApp = target.entry.kind === "app" && from.kcalls.has(K.GRANT_APP);
    if (!from.ipc.has(to) && !mayApp) {
      from.denied++;
      return answer({ denied: req, errno: EPERM, error: `${from.entry.name} may not share memory with ${target.entry.name}` });
    }
    const m = (meta && typeof meta === "object" ? meta : {}) as Record<string, unknown>;
    const id = this.grant(target, sab, { ...m, from: from.ep });
    from.resources.push({ kind: "sab", to, sab, meta: m });
    answer({ granted: req, id });
  }

  /** Grants a new generation everything its endpoint held; returns the descriptions for its init. */
  private regrant(slot: Slot): Restored {
    const out: Restored = [];
    for (const r of slot.resources) {
      if (r.kind === "chan") {
        out.push({
          kind: "chan",
          info: {
            ...r.opts, chan: r.chan, peer: r.peer,
            txGrant: this.grant(slot, r.tx, { chan: r.chan, role: "tx" }),
            rxGrant: this.grant(slot, r.rx, { chan: r.chan, role: "rx" }),
            peerDoorbellGrant: this.grant(slot, r.peerDoorbell, { chan: r.chan, role: "peer-doorbell" }),
          },
        });
      } else if (r.kind === "pool") {
        out.push({ kind: "pool", info: { pool: r.pool, owner: r.owner, grant: this.grant(slot, r.sab, { pool: r.pool }) } });
      } else if (this.slots[r.to]?.state !== "exited") {
        out.push({ kind: "sab", to: r.to, meta: r.meta, grant: this.grant(slot, r.sab, { ...r.meta, to: r.to }) });
      }
    }
    return out;
  }

  /** Tells everyone who shares memory with a restarted process (pool owners reclaim its buffers). */
  private tellPeers(slot: Slot): void {
    const peers = new Set<number>();
    for (const r of slot.resources) {
      if (r.kind === "sab") continue;
      if (r.kind === "chan") peers.add(r.peer);
      else if (r.owner !== slot.ep) peers.add(r.owner);
      else for (const s of this.slots) if (s && s !== slot && s.resources.some((x) => x.kind === "pool" && x.pool === (r as { pool: number }).pool)) peers.add(s.ep);
    }
    const payload = { ep: slot.ep, name: slot.entry.name, generation: slot.gen };
    for (const ep of peers) {
      const peer = this.slots[ep];
      if (peer && peer.state === "running") {
        this.deliver(peer, encodeMessage({ dst: ep, src: KERNEL, type: KC.PEER_RESTARTED, id: 0, flags: 0 }, payload));
      }
    }
  }

  /** Sends a call from the kernel itself (ping) and resolves with the reply. */
  callProc(ep: number, type: number, payload: unknown, timeoutMs: number): Promise<Message> {
    const slot = this.slots[ep];
    if (!slot) return Promise.reject(new Error(`no process at endpoint ${ep}`));
    const id = this.nextKid++;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.kernelCalls.delete(id);
        reject(new Error(`${slot.entry.name} did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.kernelCalls.set(id, (m) => {
        clearTimeout(t);
        resolve(m);
      });
      if (!this.deliver(slot, encodeMessage({ dst: ep, src: KERNEL, type, id, flags: F_CALL }, payload))) {
        clearTimeout(t);
        this.kernelCalls.delete(id);
        reject(new Error(`${slot.entry.name}: backlog full`));
      }
    });
  }

  // ---- boot, apps, control -------------------------------------------------------

  async boot(): Promise<void> {
    for (const e of this.init.servers) this.addSlot(e);
    for (const s of this.slots) if (s) this.resolveAcl(s);
    for (const e of this.init.servers) await this.spawn(this.slots[this.byName.get(e.name)!]!);
    for (const a of this.init.apps) await this.spawnEntry(a);
  }

  private async spawnEntry(entry: BootEntry): Promise<number> {
    let name = entry.name;
    for (let i = 2; this.byName.has(name); i++) name = `${entry.name}.${i}`;
    const slot = this.addSlot({ ...entry, name });
    this.resolveAcl(slot);
    await this.spawn(slot);
    return slot.ep;
  }

  /** Starts an app: NAME is apps/NAME.ts, or a path to a module (tests). */
  spawnApp(name: string, args: string[]): Promise<number> {
    if (!/^[A-Za-z0-9_./-]+$/.test(name)) return Promise.reject(new Error(`bad app name '${name}'`));
    const module = name.includes("/") ? name : `apps/${name}.ts`;
    const base = name.split("/").pop()!.replace(/\.ts$/, "");
    return this.spawnEntry(appEntry(base, module, args));
  }

  ps(): ProcRow[] {
    const rows: ProcRow[] = [];
    for (const s of this.slots) {
      if (!s) continue;
      const pstate = Atomics.load(s.pcb, PCB.STATE);
      const state = s.state === "running" ? (PSTATE_NAMES[pstate] ?? "running") : s.state;
      rows.push({
        ep: s.ep, name: s.entry.name, kind: s.entry.kind, pid: s.pid, tid: s.tid,
        cpus: cpuListFromMask(Atomics.load(s.pcb, PCB.CPUS_LO), Atomics.load(s.pcb, PCB.CPUS_HI)),
        state, generation: s.gen, restarts: s.restarts, msgsIn: s.msgsIn, msgsOut: s.msgsOut,
        wakes: Atomics.load(s.pcb, PCB.WAKES), denied: s.denied, rejected: s.rejected, exitStatus: s.exitStatus,
      });
    }
    return rows;
  }

  /**
   * `stats [NAME]`: libc's socket-call counters of every process that has used the socket
   * API (or of NAME), read straight out of the PCBs (lib/sys/counters.ts). An exited app keeps
   * its last counters (app endpoints are never reused); a restarted server starts again at 0.
   */
  sockStats(name?: string): ProcSockStats[] {
    const slots = name === undefined ? this.slots : [this.slotByName(name)];
    const rows: ProcSockStats[] = [];
    for (const s of slots) {
      if (!s) continue;
      const state = s.state === "running" ? (PSTATE_NAMES[Atomics.load(s.pcb, PCB.STATE)] ?? "running") : s.state;
      const r = procSockStats(s.entry.name, s.ep, state, s.pcbSab);
      if (r) rows.push(r);
      else if (name !== undefined) throw new Error(`${s.entry.name} has not used the socket API`);
    }
    return rows;
  }

  private slotByName(name: string): Slot {
    const ep = this.byName.get(name) ?? (/^\d+$/.test(name) ? Number(name) : undefined);
    const s = ep === undefined ? undefined : this.slots[ep];
    if (!s) throw new Error(`no process named '${name}'`);
    return s;
  }

  /** Requests from the machine (main thread): ctl commands and shutdown. */
  async control(cmd: string, args: string[]): Promise<unknown> {
    switch (cmd) {
      case "ps":
        return this.ps();
      case "kill": {
        const s = this.slotByName(args[0] ?? "");
        if (!s.worker) throw new Error(`${s.entry.name} is not running`);
        this.kill(s.ep);
        return `killed ${s.entry.name} (ep ${s.ep}, gen ${s.gen})`;
      }
      case "hang": {
        const s = this.slotByName(args[0] ?? "");
        if (!s.worker) throw new Error(`${s.entry.name} is not running`);
        this.deliver(s, encodeMessage({ dst: s.ep, src: KERNEL, type: KC.HANG, id: 0, flags: 0 }, null));
        return `told ${s.entry.name} (ep ${s.ep}) to hang`;
      }
      case "restart": {
        const s = this.slotByName(args[0] ?? "");
        await this.restart(s.ep, "ctl restart");
        return `restarted ${s.entry.name} (ep ${s.ep}, gen ${s.gen})`;
      }
      case "spawn": {
        if (!args[0]) throw new Error("spawn: which app?");
        const ep = await this.spawnApp(args[0], args.slice(1));
        return `spawned ${this.slots[ep]!.entry.name} at ep ${ep}`;
      }
      case "ping": {
        const s = this.slotByName(args[0] ?? "");
        const t0 = performance.now();
        const r = await this.callProc(s.ep, PING, null, Number(args[1] ?? 1000));
        if ((r.flags & F_ERROR) !== 0) throw new Error(`${s.entry.name}: ${JSON.stringify(r.payload)}`);
        return { ...(r.payload as object), rttMs: performance.now() - t0 };
      }
      case "kstats":
        return { ...this.stats };
      case "stats":
        return this.sockStats(args[0]);
      case "srv": {
        // A server's own control command: srv NAME CMD [TEXT]
        const s = this.slotByName(args[0] ?? "");
        const r = await this.callProc(s.ep, SRV_CTL, { cmd: args[1] ?? "", text: args[2], name: args[0] }, 5000);
        if ((r.flags & F_ERROR) !== 0) throw new Error((r.payload as { error?: string }).error ?? "failed");
        return r.payload;
      }
      default:
        throw new Error(`unknown command '${cmd}'`);
    }
  }

  async shutdown(): Promise<void> {
    this.stopping = true;
    const all: Promise<void>[] = [];
    for (const s of this.slots) {
      if (s?.worker) {
        all.push(new Promise<void>((r) => s.onExit.push(r)));
        void s.worker.terminate();
      }
    }
    await Promise.race([Promise.all(all), new Promise((r) => setTimeout(r, 1500))]);
    for (const s of this.slots) s?.grantPort?.close();
  }

  // ---- the loop ----------------------------------------------------------------

  private anyPending(): boolean {
    for (let w = 0; w < this.pending.length; w++) if (Atomics.load(this.pending, w) !== 0) return true;
    return false;
  }

  /** One round: every outbox with pending work, then every backlog. */
  private round(): number {
    let n = 0;
    for (let w = 0; w < this.pending.length; w++) {
      if (Atomics.load(this.pending, w) === 0) continue;
      const bits = Atomics.exchange(this.pending, w, 0);
      for (let b = 0; b < 32; b++) {
        if ((bits >>> b) & 1) {
          const s = this.slots[w * 32 + b];
          if (s) n += this.drainOutbox(s);
        }
      }
    }
    for (const s of this.slots) if (s && s.backlog.length > 0 && this.flushBacklog(s)) n++;
    return n;
  }

  async loop(): Promise<void> {
    let idle = 0;
    let lastYield = performance.now();
    while (!this.stopping) {
      this.stats.rounds++;
      if (this.round() > 0) {
        idle = 0;
        // Let worker events and the machine's requests in now and then.
        if (performance.now() - lastYield > 2) {
          await new Promise((r) => setImmediate(r));
          lastYield = performance.now();
        }
        continue;
      }
      if (++idle < KERNEL_SPIN) continue;
      idle = 0;
      this.stats.sleeps++;
      await this.doorbell.sleepAsync(() => this.anyPending(), KERNEL_SLEEP_MS);
      lastYield = performance.now();
    }
  }
}

// ---- worker entry ------------------------------------------------------------------

if (parentPort && workerData && (workerData as { kernel?: boolean }).kernel) {
  const kinit = (workerData as { init: KernelInit }).init;
  loadLibc(new Int32Array(kinit.machine, 0, 1)); // wakers may write a driver's eventfd
  const kernel = new Kernel(kinit);
  const port = parentPort;
  port.on("message", (m: { op: string; id?: number; cmd?: string; args?: string[] }) => {
    if (m.op === "ctl") {
      kernel.control(m.cmd ?? "", m.args ?? []).then(
        (data) => port.postMessage({ op: "ctl-reply", id: m.id, ok: true, data }),
        (e: Error) => port.postMessage({ op: "ctl-reply", id: m.id, ok: false, error: e.message }),
      );
    } else if (m.op === "shutdown") {
      void kernel.shutdown().then(() => port.postMessage({ op: "down" }));
    }
  });
  void kernel.loop();
  kernel.boot().then(
    () => port.postMessage({ op: "booted", procs: kernel.ps() }),
    (e: Error) => port.postMessage({ op: "boot-failed", error: e.message }),
  );
}
