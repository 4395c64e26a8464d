// The machine: what the main thread does. It starts the kernel worker with the
// boot table, relays control requests to it, and collects its console lines.
// `npm start` (kernel/main.ts) and the tests both boot through here.
import { Worker } from "node:worker_threads";
import { fileURLToPath } from "node:url";
import { getAffinity, loadLibc } from "../lib/sys/ffi.ts";
import { appEntry, SERVERS, SERVERS_SINGLE, type BootEntry } from "./table.ts";
import { openWire, type WireSpec } from "../drivers/wire.ts";
import type { Backend } from "../drivers/backends/backend.ts";
import type { KernelInit, ProcRow } from "./kernel.ts";
import type { ProcSockStats } from "../lib/sys/counters.ts";

export const ROOT = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");
export const VERSION = "0.1.0";

export interface AppSpec {
  name: string;
  args: string[];
}

export interface BootOptions {
  apps?: AppSpec[];
  servers?: BootEntry[];
  /** More boot-table entries after the servers (tests: apps with their own ACLs). */
  extra?: BootEntry[];
  /**
   * The wire under the NIC: "none", "tap[,ns=NS,dev=DEV,addr=A/N]",
   * "dgram,local=P,remote=P" or "hostfwd[,net=,host=,guest=]", with optional fault
   * rates (drivers/wire.ts). Default: hostfwd when `hostfwd` has rules, else none.
   */
  net?: string;
  /** Port forwarding rules "tcp:HOSTPORT:GUESTPORT" for the hostfwd wire (127.0.0.1:HOSTPORT -> newts:GUESTPORT). */
  hostfwd?: string[];
  /** Record the NIC's frames here (pcap). */
  pcap?: string;
  /** newts's address with prefix, and its gateway. Defaults 10.0.2.15/24 and 10.0.2.2 (QEMU's user network). */
  addr?: string;
  gateway?: string;
  /** MAC of the NIC. Default 52:54:00:12:34:56. */
  mac?: string;
  /** "split" (default): a server per layer; "single": the whole stack in one server. */
  stack?: "split" | "single";
  /** Packet filter rules (lib/net/pf/rules.ts). Default: none (pass everything). */
  pfRules?: string;
  /** Console lines (boot log, server logs). Default: collected only. */
  onLog?: (line: string) => void;
}

export interface AppExit {
  name: string;
  ep: number;
  status: number;
  result?: unknown;
  error?: string;
}

type KernelMsg =
  | { op: "log"; line: string }
  | { op: "booted"; procs: ProcRow[] }
  | { op: "boot-failed"; error: string }
  | { op: "ctl-reply"; id: number; ok: boolean; data?: unknown; error?: string }
  | { op: "app-result"; name: string; ep: number; status: number; result?: unknown; error?: string }
  | { op: "app-exit"; name: string; ep: number; status: number; error?: string }
  | { op: "down" };

/** Parses "NAME ARG ARG" as given to --app. */
export function parseAppSpec(s: string): AppSpec | null {
  const parts = s.trim().split(/\s+/).filter((x) => x.length > 0);
  if (parts.length === 0 || !/^[A-Za-z0-9_./-]+$/.test(parts[0]!)) return null;
  return { name: parts[0]!, args: parts.slice(1) };
}

/** Each stack layer's configuration; the single stack gets them all. */
function stackConfig(wire: WireSpec, opts: BootOptions): Record<string, Record<string, unknown>> {
  const layers = {
    nic: { wire },
    ip: { addr: opts.addr ?? "10.0.2.15/24", gateway: opts.gateway ?? "10.0.2.2", mac: opts.mac },
    pf: { rules: opts.pfRules ?? "" },
  };
  return { ...layers, stack: layers };
}

export class Machine {
  readonly kernel: Worker;
  readonly logs: string[] = [];
  readonly exits: AppExit[] = [];
  private readonly onLog?: (line: string) => void;
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly exitWaiters: Array<(e: AppExit) => void> = [];
  private down = false;
  private downWaiters: Array<() => void> = [];
  private kernelError: Error | null = null;
  /** The device under the NIC (closed, and its namespace removed, at shutdown). */
  device: Backend | null = null;
  wire: WireSpec | null = null;

  /** Machines booted and not yet shut down (a failing test prints their logs). */
  static readonly live = new Set<Machine>();

  private constructor(kernel: Worker, onLog?: (line: string) => void) {
    this.kernel = kernel;
    this.onLog = onLog;
    Machine.live.add(this);
  }

  static boot(opts: BootOptions = {}): Promise<Machine> {
    const machine = new SharedArrayBuffer(64); // [0] the dlopen lock
    const lock = new Int32Array(machine, 0, 1);
    loadLibc(lock);
    // The machine owns the wire (a device outlives its driver); the nic attaches to its fd.
    let opened: ReturnType<typeof openWire>;
    try {
      const net = opts.net ?? (opts.hostfwd?.length ? "hostfwd" : "none");
      opened = openWire(net, { pcap: opts.pcap, mac: opts.mac, lock, hostfwd: opts.hostfwd });
    } catch (e) {
      return Promise.reject(e);
    }
    const { device, spec } = opened;
    const init: KernelInit = {
      root: ROOT,
      servers: [...(opts.servers ?? (opts.stack === "single" ? SERVERS_SINGLE : SERVERS)), ...(opts.extra ?? [])],
      apps: (opts.apps ?? []).map((a) => appEntry(a.name, a.name.includes("/") ? a.name : `apps/${a.name}.ts`, a.args)),
      machine,
      cpusAllowed: getAffinity(),
      release: VERSION,
      bootEpochMs: Date.now(),
      config: stackConfig(spec, opts),
    };
    const kernel = new Worker(new URL("./kernel.ts", import.meta.url), {
      workerData: { kernel: true, init },
      name: "kernel",
    } as ConstructorParameters<typeof Worker>[1]);
    const m = new Machine(kernel, opts.onLog);
    m.device = device;
    m.wire = spec;
    return new Promise((resolve, reject) => {
      kernel.on("error", (e: Error) => {
        m.kernelError = e;
        m.log(`[machine] kernel crashed: ${e.message}`);
        reject(e);
      });
      kernel.on("exit", (code: number) => {
        m.down = true;
        m.device?.close();
        m.device = null;
        for (const w of m.waiting.values()) w.reject(new Error(`kernel exited (code ${code})`));
        m.waiting.clear();
        for (const f of m.downWaiters.splice(0)) f();
        reject(m.kernelError ?? new Error(`kernel exited during boot (code ${code})`));
      });
      kernel.on("message", (msg: KernelMsg) => {
        switch (msg.op) {
          case "log":
            m.log(msg.line);
            break;
          case "booted":
            resolve(m);
            break;
          case "boot-failed":
            m.log(`[machine] boot failed: ${msg.error}`);
            void m.shutdown().finally(() => reject(new Error(`boot failed: ${msg.error}`)));
            break;
          case "ctl-reply": {
            const w = m.waiting.get(msg.id);
            if (!w) break;
            m.waiting.delete(msg.id);
            if (msg.ok) w.resolve(msg.data);
            else w.reject(new Error(msg.error));
            break;
          }
          case "app-result":
          case "app-exit": {
            const e: AppExit = { name: msg.name, ep: msg.ep, status: msg.status, error: msg.error };
            if (msg.op === "app-result") e.result = msg.result;
            // app-result comes first (the app's own K.EXIT); its worker's exit follows.
            if (msg.op === "app-exit" && m.exits.some((x) => x.ep === msg.ep && x.name === msg.name)) break;
            m.exits.push(e);
            if (e.error) m.log(`[machine] app ${e.name} failed: ${e.error}`);
            for (const f of m.exitWaiters.splice(0)) f(e);
            break;
          }
          case "down":
            for (const f of m.downWaiters.splice(0)) f();
            break;
        }
      });
    });
  }

  private log(line: string): void {
    this.logs.push(line);
    if (this.logs.length > 10_000) this.logs.splice(0, 5000);
    this.onLog?.(line);
  }

  /** A control command (ps, kill, hang, restart, spawn, ping, kstats, stats, srv). */
  ctl(cmd: string, args: string[] = []): Promise<unknown> {
    if (this.down) return Promise.reject(new Error("the machine is down"));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.kernel.postMessage({ op: "ctl", id, cmd, args });
    });
  }

  ps(): Promise<ProcRow[]> {
    return this.ctl("ps") as Promise<ProcRow[]>;
  }

  /** `stats [NAME]`: the socket-call counters and Table 5.2 of each process that has used sockets (or of NAME). */
  sockStats(name?: string): Promise<ProcSockStats[]> {
    return this.ctl("stats", name === undefined ? [] : [name]) as Promise<ProcSockStats[]>;
  }

  /** Resolves when the app named `name` exits (already exited: at once). */
  waitApp(name: string, timeoutMs = 30_000): Promise<AppExit> {
    const done = this.exits.find((e) => e.name === name);
    if (done) return Promise.resolve(done);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`app ${name} did not exit within ${timeoutMs} ms`)), timeoutMs);
      const check = (e: AppExit) => {
        if (e.name === name) {
          clearTimeout(t);
          resolve(e);
        } else this.exitWaiters.push(check);
      };
      this.exitWaiters.push(check);
    });
  }

  /** Starts an app; resolves with the name it got (NAME, or NAME.2 ... when one runs already). */
  async spawn(name: string, args: string[] = []): Promise<string> {
    const r = (await this.ctl("spawn", [name, ...args])) as string;
    return /spawned (\S+) at/.exec(r)?.[1] ?? name;
  }

  /** Starts an app and waits for it to exit. */
  async run(name: string, args: string[] = [], timeoutMs = 30_000): Promise<AppExit> {
    return this.waitApp(await this.spawn(name, args), timeoutMs);
  }

  /** Stops every worker and the kernel. Resolves when all are gone (at most ~2 s). */
  async shutdown(): Promise<void> {
    if (this.down) return;
    Machine.live.delete(this);
    const down = new Promise<void>((r) => this.downWaiters.push(r));
    this.kernel.postMessage({ op: "shutdown" });
    await Promise.race([down, new Promise((r) => setTimeout(r, 1800))]);
    this.down = true;
    await this.kernel.terminate();
    this.device?.close();
    this.device = null;
  }
}
