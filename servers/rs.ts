// The reincarnation server: watches every server by heartbeat and by the kernel's
// report of worker exits, and restarts the dead or hung with exponential backoff.
import { readFileSync } from "node:fs";
import { K, KC } from "../lib/ipc/calls.ts";
import type { Message } from "../lib/ipc/message.ts";
import type { Proc } from "../lib/sys/proc.ts";
import { NO_REPLY, type ServerDef } from "../lib/sys/server.ts";
import { PCB, PState } from "../lib/sys/pcb.ts";

/**
 * A heartbeat that has not moved for this long, in a thread the kernel has put to
 * sleep (blocked, not runnable), means the server hangs.
 */
export const HEARTBEAT_TIMEOUT_MS = 300;
/**
 * A runnable thread may just be starved of CPU (two cores, a dozen threads) or in a
 * long garbage collection: it is judged hung only after this long.
 */
export const RUNNABLE_TIMEOUT_MS = 800;
/** A scan of rs this much later than due means the host stalled us all (see poll). */
export const STALL_MS = 100;
/** A new generation gets this long to start beating before it is judged. */
export const START_GRACE_MS = 3000;
/** Restarts within this window count towards the backoff. */
export const BACKOFF_WINDOW_MS = 30_000;
export const BACKOFF_BASE_MS = 100;
export const BACKOFF_MAX_MS = 10_000;

interface Watched {
  ep: number;
  name: string;
  pcb: Int32Array;
  lastBeat: number;
  lastChange: number;
  /** When a restart is due (backoff), or null. */
  restartAt: number | null;
  reason: string;
  /** Times of recent restarts (for the backoff). */
  recent: number[];
  restarts: number;
}

interface State {
  watched: Map<number, Watched>;
  lastScan: number;
}

interface WatchInit {
  ep: number;
  name: string;
  pcb: SharedArrayBuffer;
}

function watch(s: State, w: WatchInit): void {
  const now = performance.now();
  const pcb = new Int32Array(w.pcb);
  s.watched.set(w.ep, {
    ep: w.ep, name: w.name, pcb, lastBeat: Atomics.load(pcb, PCB.HEARTBEAT), lastChange: now + START_GRACE_MS,
    restartAt: null, reason: "", recent: [], restarts: 0,
  });
}

function init(proc: Proc): State {
  const s: State = { watched: new Map(), lastScan: 0 };
  for (const w of (proc.init.extra.watch as WatchInit[] | undefined) ?? []) watch(s, w);
  return s;
}

/** Whether a thread of this process is running or waiting for a CPU (state R in /proc). */
function runnable(tid: number): boolean {
  if (!(tid > 0)) return false;
  try {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, "latin1");
    return stat.charAt(stat.lastIndexOf(")") + 2) === "R";
  } catch {
    return false;
  }
}

/** Backoff before the next restart: none for the first in the window, then doubling. */
export function backoffMs(recentRestarts: number): number {
  if (recentRestarts === 0) return 0;
  return Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (recentRestarts - 1));
}

function schedule(w: Watched, reason: string, now: number, proc: Proc): void {
  if (w.restartAt !== null) return;
  w.recent = w.recent.filter((t) => now - t < BACKOFF_WINDOW_MS);
  const delay = backoffMs(w.recent.length);
  w.restartAt = now + delay;
  w.reason = reason;
  proc.log(`${w.name} (ep ${w.ep}) ${reason}; restart in ${delay} ms`);
}

export const server: ServerDef<State> = {
  initFresh: init,
  initRestart: init,
  handlers: {
    [KC.EXITED]: (s, m: Message, proc) => {
      const p = m.payload as { ep: number; code: number; error?: string };
      const w = s.watched.get(p.ep);
      if (w) schedule(w, p.error ? `crashed (${p.error})` : `exited (code ${p.code})`, performance.now(), proc);
      return NO_REPLY;
    },
    [KC.NEW_SERVER]: (s, m: Message) => {
      watch(s, m.payload as WatchInit);
      return NO_REPLY;
    },
  },
  poll(s, proc) {
    const now = performance.now();
    const gap = now - s.lastScan;
    if (gap < 20) return false;
    // rs itself ran late: the host did not schedule us (other machines, other work).
    // Silence while the whole machine stood still is nobody's hang: shift the clocks.
    if (s.lastScan > 0 && gap > STALL_MS) for (const w of s.watched.values()) w.lastChange += gap - 20;
    s.lastScan = now;
    let did = false;
    for (const w of s.watched.values()) {
      if (w.restartAt !== null) {
        if (now < w.restartAt) continue;
        w.restartAt = null;
        w.recent.push(now);
        w.restarts++;
        try {
          // The kernel replies once the old worker is gone and the PCB is cleared.
          proc.kcall(K.RESTART, { ep: w.ep, reason: w.reason }, 5000);
          w.lastBeat = Atomics.load(w.pcb, PCB.HEARTBEAT);
          w.lastChange = performance.now() + START_GRACE_MS;
        } catch (e) {
          proc.log(`restart of ${w.name} failed: ${(e as Error).message}`);
          schedule(w, "restart failed", performance.now(), proc);
        }
        did = true;
        continue;
      }
      const beat = Atomics.load(w.pcb, PCB.HEARTBEAT);
      if (beat !== w.lastBeat) {
        w.lastBeat = beat;
        // The grace period ends at the first beat of a new generation.
        w.lastChange = now;
        continue;
      }
      const state = Atomics.load(w.pcb, PCB.STATE);
      if (state === PState.EXITED) continue;
      const silent = now - w.lastChange;
      if (silent > HEARTBEAT_TIMEOUT_MS && (silent > RUNNABLE_TIMEOUT_MS || !runnable(Atomics.load(w.pcb, PCB.TID)))) {
        schedule(w, `hung (no heartbeat for ${Math.round(silent)} ms)`, now, proc);
        did = true;
      }
    }
    return did;
  },
  nextDeadline: () => 20,
};
