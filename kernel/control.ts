// Control: the machine's requests (ctl commands from the main thread): ps, stats,
// kill, hang, restart, spawn, ping, kstats and a server's own commands (srv).
import { encodeMessage, F_ERROR } from "../lib/ipc/message.ts";
import { KC, KERNEL, PING, SRV_CTL } from "../lib/ipc/calls.ts";
import { cpuListFromMask, PCB } from "../lib/sys/pcb.ts";
import { procSockStats, type ProcSockStats } from "../lib/sys/counters.ts";
import { shownState, type ProcRow, type Slot } from "./slot.ts";
import type { Procs } from "./procs.ts";
import type { Router } from "./route.ts";
import type { KernelState } from "./state.ts";

/** Answers the machine's requests about and to the kernel's processes. */
export class Control {
  /** The ctl commands, by name: each gets the command's arguments. */
  private readonly commands: Record<string, (args: string[]) => unknown> = {
    ps: () => this.ps(),
    kill: (args) => {
      const s = this.slotByName(args[0] ?? "");
      if (!s.worker) throw new Error(`${s.entry.name} is not running`);
      this.procs.kill(s.ep);
      return `killed ${s.entry.name} (ep ${s.ep}, gen ${s.gen})`;
    },
    hang: (args) => {
      const s = this.slotByName(args[0] ?? "");
      if (!s.worker) throw new Error(`${s.entry.name} is not running`);
      this.router.deliver(s, encodeMessage({ dst: s.ep, src: KERNEL, type: KC.HANG, id: 0, flags: 0 }, null));
      return `told ${s.entry.name} (ep ${s.ep}) to hang`;
    },
    restart: async (args) => {
      const s = this.slotByName(args[0] ?? "");
      await this.procs.restart(s.ep, "ctl restart");
      return `restarted ${s.entry.name} (ep ${s.ep}, gen ${s.gen})`;
    },
    spawn: async (args) => {
      if (!args[0]) throw new Error("spawn: which app?");
      const ep = await this.procs.spawnApp(args[0], args.slice(1));
      return `spawned ${this.k.slots[ep]!.entry.name} at ep ${ep}`;
    },
    ping: async (args) => {
      const s = this.slotByName(args[0] ?? "");
      const t0 = performance.now();
      const r = await this.router.callProc(s.ep, PING, null, Number(args[1] ?? 1000));
      if ((r.flags & F_ERROR) !== 0) throw new Error(`${s.entry.name}: ${JSON.stringify(r.payload)}`);
      return { ...(r.payload as object), rttMs: performance.now() - t0 };
    },
    kstats: () => ({ ...this.k.stats }),
    stats: (args) => this.sockStats(args[0]),
    srv: async (args) => {
      // A server's own control command: srv NAME CMD [TEXT]
      const s = this.slotByName(args[0] ?? "");
      const r = await this.router.callProc(s.ep, SRV_CTL, { cmd: args[1] ?? "", text: args[2], name: args[0] }, 5000);
      if ((r.flags & F_ERROR) !== 0) throw new Error((r.payload as { error?: string }).error ?? "failed");
      return r.payload;
    },
  };

  constructor(
    private readonly k: KernelState,
    private readonly procs: Procs,
    private readonly router: Router,
  ) {}

  /** Runs a ctl command. */
  async run(cmd: string, args: string[]): Promise<unknown> {
    const f = Object.hasOwn(this.commands, cmd) ? this.commands[cmd] : undefined;
    if (!f) throw new Error(`unknown command '${cmd}'`);
    return await f(args);
  }

  ps(): ProcRow[] {
    const rows: ProcRow[] = [];
    for (const s of this.k.slots) {
      if (!s) continue;
      rows.push({
        ep: s.ep, name: s.entry.name, kind: s.entry.kind, pid: s.pid, tid: s.tid,
        cpus: cpuListFromMask(Atomics.load(s.pcb, PCB.CPUS_LO), Atomics.load(s.pcb, PCB.CPUS_HI)),
        state: shownState(s), generation: s.gen, restarts: s.restarts, msgsIn: s.msgsIn, msgsOut: s.msgsOut,
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
    const slots = name === undefined ? this.k.slots : [this.slotByName(name)];
    const rows: ProcSockStats[] = [];
    for (const s of slots) {
      if (!s) continue;
      const r = procSockStats(s.entry.name, s.ep, shownState(s), s.pcbSab);
      if (r) rows.push(r);
      else if (name !== undefined) throw new Error(`${s.entry.name} has not used the socket API`);
    }
    return rows;
  }

  private slotByName(name: string): Slot {
    const ep = this.k.byName.get(name) ?? (/^\d+$/.test(name) ? Number(name) : undefined);
    const s = ep === undefined ? undefined : this.k.slots[ep];
    if (!s) throw new Error(`no process named '${name}'`);
    return s;
  }
}
