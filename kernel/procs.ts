// Process lifecycle: the process table's slots, starting a generation of a process
// (spawn), what happens when one exits (callers get EINTR, rs or the machine is told),
// restart, kill, starting apps, boot and shutdown.
import { MessageChannel, Worker } from "node:worker_threads";
import { createByteRingBuffer, MsgRing } from "../lib/ipc/ring.ts";
import { encodeMessage, MAX_MSG } from "../lib/ipc/message.ts";
import { KC, KERNEL, MAX_ENDPOINTS, NET } from "../lib/ipc/calls.ts";
import { EINTR } from "../lib/sys/errno.ts";
import type { ProcInit } from "../lib/sys/proc.ts";
import { PCB } from "../lib/sys/pcb.ts";
import { KI, kinfoSet } from "../lib/sys/kinfo.ts";
import { appEntry, type BootEntry } from "./table.ts";
import { newSlot, type Slot } from "./slot.ts";
import type { Grants } from "./grants.ts";
import type { Router } from "./route.ts";
import type { KernelState } from "./state.ts";

const MAILBOX_BYTES = 64 * 1024;
const READY_TIMEOUT_MS = 15_000;

/** Starts, watches, restarts and stops the kernel's processes. */
export class Procs {
  private nextPid = 1;

  constructor(
    private readonly k: KernelState,
    private readonly router: Router,
    private readonly grants: Grants,
  ) {}

  private addSlot(entry: BootEntry): Slot {
    let ep = 1;
    while (ep < MAX_ENDPOINTS && this.k.slots[ep]) ep++;
    if (ep >= MAX_ENDPOINTS) throw new Error("process table full");
    const slot = newSlot(ep, entry);
    this.k.slots[ep] = slot;
    this.k.byName.set(entry.name, ep);
    for (const a of entry.aliases ?? []) this.k.byName.set(a, ep);
    return slot;
  }

  /** Resolves names in every ACL (done after all boot entries have endpoints). */
  private resolveAcl(slot: Slot): void {
    slot.ipc = new Set(slot.entry.ipc.map((n) => this.k.byName.get(n)).filter((e): e is number => e !== undefined));
  }

  private endpointsMap(): Record<string, number> {
    return Object.fromEntries(this.k.byName);
  }

  private cpusFor(entry: BootEntry): number[] {
    const allowed = this.k.init.cpusAllowed.length > 0 ? this.k.init.cpusAllowed : [0];
    return [allowed[entry.cpu % allowed.length]!];
  }

  /** Starts a new generation of a slot's process; resolves when it has pinned itself. */
  private spawn(slot: Slot, extra: Record<string, unknown> = {}): Promise<void> {
    const k = this.k;
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
    kinfoSet(k.kinfo, slot.ep, KI.PID, slot.pid);
    kinfoSet(k.kinfo, slot.ep, KI.PPID, 0);
    kinfoSet(k.kinfo, slot.ep, KI.GEN, slot.gen);
    kinfoSet(k.kinfo, slot.ep, KI.ALIVE, 1);
    const { port1, port2 } = new MessageChannel();
    slot.grantPort?.close();
    slot.grantPort = port1;
    for (const g of slot.earlyGrants.splice(0)) port1.postMessage(g);
    const init: ProcInit = {
      name: slot.entry.name,
      ep: slot.ep,
      kind: slot.entry.kind,
      module: new URL(slot.entry.module, `file://${k.init.root}/`).pathname,
      args: slot.entry.args ?? [],
      cpus: this.cpusFor(slot.entry),
      generation: slot.gen,
      inbox: slot.inbox.ring.sab,
      outbox: outboxSab,
      doorbell: slot.doorbellSab,
      notify: slot.notifySab,
      kernelDoorbell: k.doorbellSab,
      kernelPending: k.pendingSab,
      pcb: slot.pcbSab,
      store: slot.storeSab,
      machine: k.init.machine,
      endpoints: this.endpointsMap(),
      grants: port2,
      extra: { ...this.extraFor(slot), ...extra },
    };
    // A restarted process gets back the channels and pools of its earlier generations.
    init.extra.resources = this.grants.regrant(slot);
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
        this.grants.grantFrom(slot, m.req ?? 0, Number(m.to), m.sab, m.meta);
        return;
      }
      if (m.op === "ready") {
        slot.tid = m.tid ?? 0;
        slot.cpus = m.cpus ?? [];
        slot.state = "running";
        k.log(
          `[boot] ep ${String(slot.ep).padStart(2)} ${slot.entry.name.padEnd(8)} ${slot.entry.kind.padEnd(6)} ` +
            `gen ${gen} pid ${slot.pid} tid ${slot.tid} cpu ${init.cpus.join(",")} -> sched_getaffinity {${slot.cpus.join(",")}}`,
        );
        this.router.flushBacklog(slot);
        if (gen > 0) this.grants.tellPeers(slot);
        for (const f of slot.onReady.splice(0)) f();
      } else if (m.op === "log" && typeof m.line === "string") {
        k.log(m.line);
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
    const cfg = this.k.init.config[slot.entry.name] ?? {};
    return { ...cfg, ...this.kernelExtraFor(slot) };
  }

  private kernelExtraFor(slot: Slot): Record<string, unknown> {
    if (slot.entry.name === "syscall") {
      return { kinfo: this.k.kinfoSab, bootEpochMs: this.k.init.bootEpochMs, release: this.k.init.release };
    }
    if (slot.entry.name === "rs") {
      const watch = [];
      for (const s of this.k.slots) if (s && s.entry.kind === "server" && s !== slot) watch.push({ ep: s.ep, name: s.entry.name, pcb: s.pcbSab });
      return { watch };
    }
    return {};
  }

  private onExit(slot: Slot, gen: number, code: number): void {
    const k = this.k;
    if (slot.gen !== gen) return;
    const wasStarting = slot.state === "starting";
    const wasRestarting = slot.state === "restarting";
    slot.worker = null;
    kinfoSet(k.kinfo, slot.ep, KI.ALIVE, 0);
    // Callers blocked on the dead process get EINTR; its queued requests go with it.
    for (const s of k.slots) {
      if (s && s.pendingCall && s.pendingCall.target === slot.ep) {
        const id = s.pendingCall.id;
        s.pendingCall = null;
        this.router.errorTo(s, id, 0, EINTR, `${slot.entry.name} died during the call`);
      }
    }
    slot.pendingCall = null;
    slot.backlog = [];
    if (slot.entry.kind === "app") slot.state = "exited";
    else slot.state = wasRestarting ? "restarting" : "dead";
    for (const f of slot.onExit.splice(0)) f();
    if (wasStarting) for (const f of slot.onReady.splice(0)) f(new Error(`${slot.entry.name} exited during start (code ${code}) ${slot.lastError ?? ""}`));
    if (k.stopping || wasRestarting) return;
    if (slot.entry.kind === "app") {
      k.host({ op: "app-exit", name: slot.entry.name, ep: slot.ep, status: slot.exitStatus ?? code, error: slot.lastError });
      // The syscall server closes whatever sockets the app left open.
      const sys = k.byName.get("syscall");
      const ss = sys === undefined ? undefined : k.slots[sys];
      if (ss) this.router.deliver(ss, encodeMessage({ dst: ss.ep, src: KERNEL, type: NET.APP_EXITED, id: 0, flags: 0 }, { app: slot.ep }));
      return;
    }
    const why = slot.lastError ? `crashed: ${slot.lastError}` : `exited with code ${code}`;
    k.log(`[kernel] ${slot.entry.name} (ep ${slot.ep}, gen ${gen}) ${why}`);
    const rs = k.byName.get("rs");
    if (slot.entry.name === "rs" || rs === undefined) {
      // Nobody supervises the supervisor but the kernel.
      setTimeout(() => void this.restart(slot.ep, "rs died").catch((e) => k.log(`[kernel] ${e}`)), 100);
      return;
    }
    const payload = { ep: slot.ep, name: slot.entry.name, generation: gen, code, error: slot.lastError };
    this.router.deliver(k.slots[rs]!, encodeMessage({ dst: rs, src: KERNEL, type: KC.EXITED, id: 0, flags: 0 }, payload));
  }

  /** Terminates a process (if alive) and starts its next generation. */
  async restart(ep: number, reason: string): Promise<void> {
    const slot = this.k.slots[ep];
    if (!slot || slot.entry.kind !== "server") throw new Error(`no server at endpoint ${ep}`);
    if (this.k.stopping) return;
    if (slot.worker) {
      slot.state = "restarting";
      const gone = new Promise<void>((r) => slot.onExit.push(r));
      void slot.worker.terminate();
      await gone;
    }
    slot.restarts++;
    this.k.log(`[kernel] restarting ${slot.entry.name} (ep ${ep}): ${reason}; restart #${slot.restarts}`);
    await this.spawn(slot);
  }

  kill(ep: number): void {
    const slot = this.k.slots[ep];
    if (slot?.worker) void slot.worker.terminate();
  }

  /** Starts the boot table's servers in order, then its apps. */
  async boot(): Promise<void> {
    for (const e of this.k.init.servers) this.addSlot(e);
    for (const s of this.k.slots) if (s) this.resolveAcl(s);
    for (const e of this.k.init.servers) await this.spawn(this.k.slots[this.k.byName.get(e.name)!]!);
    for (const a of this.k.init.apps) await this.spawnEntry(a);
  }

  private async spawnEntry(entry: BootEntry): Promise<number> {
    let name = entry.name;
    for (let i = 2; this.k.byName.has(name); i++) name = `${entry.name}.${i}`;
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

  /** Stops every process (waits up to 1.5 s for them to exit). */
  async shutdown(): Promise<void> {
    this.k.stopping = true;
    const all: Promise<void>[] = [];
    for (const s of this.k.slots) {
      if (s?.worker) {
        all.push(new Promise<void>((r) => s.onExit.push(r)));
        void s.worker.terminate();
      }
    }
    await Promise.race([Promise.all(all), new Promise((r) => setTimeout(r, 1500))]);
    for (const s of this.k.slots) s?.grantPort?.close();
  }
}
