// The main loop of every server, in the MINIX style: init callbacks (fresh start
// or restart), then receive, dispatch through a table, reply unless the handler
// says not to. Unknown calls get ENOSYS. Between messages the server's own
// pollers (channels, timers) run; when nothing is to do it spins a bounded while
// and then sleeps on its doorbell.
import type { Message } from "../ipc/message.ts";
import { F_CALL } from "../ipc/message.ts";
import { PING } from "../ipc/calls.ts";
import { ENOSYS, ErrnoError } from "./errno.ts";
import { NOTIFY, type Proc, SPIN_ITERS } from "./proc.ts";
import { PCB } from "./pcb.ts";
import { schedYield } from "./ffi.ts";

/** Returned by a handler that will reply later (or never). */
export const NO_REPLY: unique symbol = Symbol("NO_REPLY");

export type Handler<S> = (s: S, m: Message, proc: Proc) => unknown;

export interface ServerDef<S> {
  /** State for a first start (generation 0). */
  initFresh(proc: Proc): S;
  /**
   * State after a restart (generation > 0), as MINIX's SEF init-restart: what the server
   * reloads (its store), re-attaches (pools, channels, a device) and re-announces is
   * written here. Defaults to initFresh (a server with nothing to get back).
   */
  initRestart?(proc: Proc): S;
  /** Message type -> handler. Its return value is the reply payload. */
  handlers: Record<number, Handler<S>>;
  /** Called for notifications (src = notifier). */
  onNotify?(s: S, src: number, proc: Proc): void;
  /** Non-message work (channels, timers). Returns true if it did anything. */
  poll?(s: S, proc: Proc): boolean;
  /** Milliseconds until poll must run again even if nothing arrives (timers). */
  nextDeadline?(s: S): number;
  /**
   * Sleeps at most `ms` when there is nothing to do. Default: the doorbell. A driver
   * overrides it to wait on its device's file descriptor as well.
   */
  idle?(s: S, proc: Proc, ms: number): void;
}

/** Runs a server forever (until the kernel terminates or shuts it down). */
export function serve<S>(proc: Proc, def: ServerDef<S>): never {
  const restart = proc.init.generation > 0;
  const s = restart && def.initRestart ? def.initRestart(proc) : def.initFresh(proc);
  proc.addPoller(() => (def.poll ? def.poll(s, proc) : false));
  const started = performance.now();
  let idle = 0;
  let loops = 0;
  for (;;) {
    if ((++loops & 1023) === 0) Atomics.store(proc.pcb, PCB.LOOPS, loops);
    proc.beat();
    let worked = def.poll ? def.poll(s, proc) : false;
    const m = proc.tryReceive();
    if (m) {
      worked = true;
      dispatch(proc, def, s, m, started);
    }
    if (worked) {
      idle = 0;
      continue;
    }
    if (++idle < SPIN_ITERS) {
      if ((idle & 255) === 0) schedYield();
      continue;
    }
    idle = 0;
    const due = def.nextDeadline ? def.nextDeadline(s) : Number.POSITIVE_INFINITY;
    const ms = Math.max(0, Math.min(due, 1000));
    if (def.idle) def.idle(s, proc, ms);
    else proc.idle(ms);
  }
}

function dispatch<S>(proc: Proc, def: ServerDef<S>, s: S, m: Message, started: number): void {
  if (m.type === NOTIFY) {
    def.onNotify?.(s, m.src, proc);
    return;
  }
  const isCall = (m.flags & F_CALL) !== 0;
  const h = def.handlers[m.type];
  if (!h) {
    if (m.type === PING) {
      if (isCall) proc.reply(m, { name: proc.name, ep: proc.ep, generation: proc.init.generation, up: performance.now() - started });
      return;
    }
    if (isCall) proc.replyError(m, ENOSYS, `${proc.name}: no call of type ${m.type}`);
    return;
  }
  let r: unknown;
  try {
    r = h(s, m, proc);
  } catch (e) {
    // An errno from a handler is an answer; anything else is a bug, and a bug crashes
    // the server so that rs restarts it (the caller gets EINTR from the kernel).
    if (e instanceof ErrnoError) {
      if (isCall) proc.replyError(m, e.errno, e.message);
      return;
    }
    throw e;
  }
  if (r === NO_REPLY || !isCall) return;
  proc.reply(m, r);
}

