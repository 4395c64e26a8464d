// Kernel calls: what a process asks of the kernel itself (messages to KERNEL), as a
// table from call number to handler. A process may make only the calls its boot-table
// entry lists (EPERM otherwise, counted); an unknown call is ENOSYS.
import { F_CALL, type Message } from "../lib/ipc/message.ts";
import { K } from "../lib/ipc/calls.ts";
import { EINVAL, ENOSYS, EPERM, ESRCH } from "../lib/sys/errno.ts";
import type { Slot } from "./slot.ts";
import type { Control } from "./control.ts";
import type { Grants } from "./grants.ts";
import type { Procs } from "./procs.ts";
import type { Router } from "./route.ts";
import type { KernelState } from "./state.ts";

/** What kernel calls reach: the kernel's state and its parts. */
export interface KernelParts extends KernelState {
  readonly procs: Procs;
  readonly router: Router;
  readonly grants: Grants;
  readonly control: Control;
}

/** One kernel call being handled: who made it, its payload, and how to answer it. */
export interface KernelCall {
  k: KernelParts;
  from: Slot;
  p: Record<string, unknown>;
  /** Replies with `payload` (if the message was a call). */
  ok: (payload: unknown) => void;
  /** Replies with an error (if the message was a call). */
  fail: (errno: number, error: string) => void;
}

/** The kernel calls, by number (lib/ipc/calls.ts: K). */
const KERNEL_CALLS: Record<number, (c: KernelCall) => void> = {
  [K.EXIT]: ({ k, from, p }) => {
    from.exitStatus = Number(p.status) || 0;
    if (from.entry.kind === "app") {
      k.host({ op: "app-result", name: from.entry.name, ep: from.ep, status: from.exitStatus, result: p.result, error: p.error });
    }
    void from.worker?.terminate();
  },
  [K.LOG]: ({ k, from, p, ok }) => {
    k.log(`${from.entry.name}: ${String(p.line)}`);
    ok(0);
  },
  [K.WHOIS]: ({ k, p, ok, fail }) => {
    const ep = k.byName.get(String(p.name));
    if (ep === undefined) fail(ESRCH, `no process named ${String(p.name)}`);
    else ok(ep);
  },
  [K.PROCS]: ({ k, ok }) => ok(k.control.ps()),
  [K.KILL]: ({ k, p, ok, fail }) => {
    const ep = Number(p.ep);
    if (!k.slots[ep]) return fail(ESRCH, `no process at endpoint ${ep}`);
    k.procs.kill(ep);
    ok(0);
  },
  [K.RESTART]: ({ k, p, ok, fail }) => {
    const ep = Number(p.ep);
    if (!k.slots[ep] || k.slots[ep]!.entry.kind !== "server") return fail(ESRCH, `no server at endpoint ${ep}`);
    // Reply once the old generation is gone and the new one is starting.
    const slot = k.slots[ep]!;
    const started = k.procs.restart(ep, String(p.reason ?? "requested"));
    const answered = new Promise<void>((r) => (slot.state === "starting" ? r() : slot.onReady.push(() => r())));
    void Promise.race([started, answered]).then(() => ok(0), (e: Error) => fail(EINVAL, e.message));
  },
  [K.SPAWN]: ({ k, p, ok, fail }) => {
    k.procs.spawnApp(String(p.name), Array.isArray(p.args) ? p.args.map(String) : []).then(
      (ep) => ok(ep),
      (e: Error) => fail(EINVAL, e.message),
    );
  },
  [K.CHAN_OPEN]: ({ k, from, p, ok, fail }) => k.grants.openChannel(from, p, ok, fail),
  [K.POOL_CREATE]: ({ k, from, p, ok, fail }) => k.grants.createPool(from, p, ok, fail),
};

/** Handles a message from `from` to the kernel that is not a reply. */
export function kernelCall(k: KernelParts, from: Slot, m: Message): void {
  const isCall = (m.flags & F_CALL) !== 0;
  if (!from.kcalls.has(m.type)) {
    from.denied++;
    k.stats.denied++;
    if (isCall) k.router.errorTo(from, m.id, m.type, EPERM, `${from.entry.name} may not make kernel call ${m.type}`);
    return;
  }
  const ok = (payload: unknown) => {
    if (isCall) k.router.replyTo(from, m, payload);
  };
  const fail = (errno: number, error: string) => {
    if (isCall) k.router.errorTo(from, m.id, m.type, errno, error);
  };
  const p = (m.payload ?? {}) as Record<string, unknown>;
  const handler = KERNEL_CALLS[m.type];
  if (handler) handler({ k, from, p, ok, fail });
  else fail(ENOSYS, `no kernel call ${m.type}`);
}
