// The reincarnation server: watches every server by heartbeat and by the kernel's
// report of worker exits, and restarts the dead or hung with exponential backoff.
import { K, KC } from "../lib/ipc/calls.ts";
import type { Message } from "../lib/ipc/message.ts";
import type { Proc } from "../lib/sys/proc.ts";
import { NO_REPLY, type ServerDef } from "../lib/sys/server.ts";
import { PCB, PState } from "../lib/sys/pcb.ts";
import { type HangRule, isHung, sampleThread, type ThreadSample } from "../lib/sys/threadstat.ts";

/**
 * How a silent server is judged (lib/sys/threadstat.ts): silence over 300 ms is a hang
 * if in it the thread used 100 ms of CPU without beating (a loop) or woke up three times
 * without beating (a wait that never ends); a thread that did neither was not let run
 * (starved on a crowded host, or blocked behind another thread), and only silence over
 * 5 s is judged against it.
 */
export const HANG_RULE: HangRule = { silentMs: 300, busyCpuMs: 100, wakes: 3, anyMs: 5000 };
/** Silence after which rs samples the thread, to compare with later (an idle server beats every 50 ms). */
const SAMPLE_AFTER_MS = 60;
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
  /** The thread's figures early in the current silence (null: not sampled yet). */
  sample: ThreadSample | null;
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
    sample: null, restartAt: null, reason: "", recent: [], restarts: 0,
  });
}

/** A first start: every server the kernel lists (with their PCBs) is watched. */
function fresh(proc: Proc): State {
  const s: State = { watched: new Map(), lastScan: 0 };
  for (const w of (proc.init.extra.watch as WatchInit[] | undefined) ?? []) watch(s, w);
  return s;
}

/**
 * After a restart (the kernel restarts rs itself): rs keeps no store and holds no channel
 * or pool. The kernel gives every generation the full watch list, so the new one watches
 * every server afresh, each with a new start grace; the backoff history and the restarts
 * the dead generation had scheduled are not kept.
 */
function restart(proc: Proc): State {
  return fresh(proc);
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
  initFresh: fresh,
  initRestart: restart,
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
          w.sample = null;
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
        w.sample = null;
        continue;
      }
      const state = Atomics.load(w.pcb, PCB.STATE);
      if (state === PState.EXITED) continue;
      const silent = now - w.lastChange;
      if (silent < SAMPLE_AFTER_MS) continue;
      const tid = Atomics.load(w.pcb, PCB.TID);
      if (w.sample === null) {
        w.sample = sampleThread(tid);
        continue;
      }
      if (silent > HANG_RULE.silentMs && isHung(HANG_RULE, silent, w.sample, sampleThread(tid))) {
        schedule(w, `hung (no heartbeat for ${Math.round(silent)} ms)`, now, proc);
        did = true;
      }
    }
    return did;
  },
  nextDeadline: () => 20,
};
