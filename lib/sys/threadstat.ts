// What Linux says of one thread of this process (/proc/self/task/TID): whether it is
// runnable, the CPU time it has used, and how often it went to sleep by itself. rs
// uses these to tell a hung server from one that is only starved of CPU or blocked
// behind another thread (a heartbeat alone cannot: on two cores shared by a dozen
// threads a healthy server can be silent for a few hundred milliseconds).
import { readFileSync } from "node:fs";

/** USER_HZ: the unit of utime and stime in /proc (100 on every Linux this runs on). */
const TICK_MS = 10;

export interface ThreadSample {
  /** State R: running or waiting for a CPU. */
  runnable: boolean;
  /** utime + stime, milliseconds. */
  cpuMs: number;
  /** voluntary_ctxt_switches: the times the thread blocked (a wait, a sleep, a lock). */
  sleeps: number;
}

/** The thread's figures now, or null if it is gone (or /proc is unreadable). Never throws. */
export function sampleThread(tid: number): ThreadSample | null {
  if (!(tid > 0)) return null;
  try {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, "latin1");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const status = readFileSync(`/proc/self/task/${tid}/status`, "latin1");
    const m = /voluntary_ctxt_switches:\s*(\d+)/.exec(status);
    return { runnable: f[0] === "R", cpuMs: (Number(f[11]) + Number(f[12])) * TICK_MS, sleeps: m ? Number(m[1]) : 0 };
  } catch {
    return null;
  }
}

/** How rs judges a silent server (milliseconds). */
export interface HangRule {
  /** Silence shorter than this is never a hang. */
  silentMs: number;
  /** CPU used during the silence that makes it a busy hang (a loop that never beats). */
  busyCpuMs: number;
  /** Wake-ups during the silence that make it a sleeping hang (it keeps waking, never beats). */
  wakes: number;
  /** Silence this long is a hang whatever the thread did (stuck behind a lock for good). */
  anyMs: number;
}

/**
 * Whether a server silent for `silentMs` hangs, given what its thread did since the
 * silence began (`since`: sampled early in the silence; `now`: sampled now). A thread
 * that neither used CPU nor woke up was not given the chance to beat: it is starved or
 * blocked behind somebody else, and only `anyMs` of that is judged.
 */
export function isHung(rule: HangRule, silentMs: number, since: ThreadSample | null, now: ThreadSample | null): boolean {
  if (silentMs <= rule.silentMs) return false;
  if (silentMs > rule.anyMs) return true;
  if (!since || !now) return false;
  return now.cpuMs - since.cpuMs >= rule.busyCpuMs || now.sleeps - since.sleeps >= rule.wakes;
}
