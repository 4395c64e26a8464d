// The syscall server: the system-call entry of newts. Apps trap to the kernel,
// which routes their calls here. Process calls are answered here; socket calls
// are forwarded to tcp/udp (issue 4).
import { SYS } from "../lib/ipc/calls.ts";
import { EINVAL, ErrnoError } from "../lib/sys/errno.ts";
import type { Message } from "../lib/ipc/message.ts";
import type { Proc } from "../lib/sys/proc.ts";
import { NO_REPLY, type ServerDef } from "../lib/sys/server.ts";
import { KI, kinfoGet } from "../lib/sys/kinfo.ts";
import { hostname } from "node:os";

interface Sleeper {
  due: number;
  msg: Message;
}

interface State {
  kinfo: Int32Array;
  bootEpochMs: number;
  release: string;
  /** Calls waiting for a timer (nanosleep), sorted by due time. */
  sleepers: Sleeper[];
}

function init(proc: Proc): State {
  const x = proc.init.extra as { kinfo: SharedArrayBuffer; bootEpochMs: number; release: string };
  return { kinfo: new Int32Array(x.kinfo), bootEpochMs: x.bootEpochMs, release: x.release, sleepers: [] };
}

export const server: ServerDef<State> = {
  initFresh: init,
  // Sleepers of the dead generation got EINTR from the kernel; nothing else to recover.
  initRestart: init,
  handlers: {
    [SYS.GETPID]: (s, m) => kinfoGet(s.kinfo, m.src, KI.PID),
    [SYS.GETPPID]: (s, m) => kinfoGet(s.kinfo, m.src, KI.PPID),
    [SYS.UPTIME]: (s) => (Date.now() - s.bootEpochMs) / 1000,
    [SYS.UNAME]: (s) => ({
      sysname: "newts",
      nodename: hostname(),
      release: s.release,
      version: `#1 newts on Bun ${Bun.version}`,
      machine: process.arch === "x64" ? "x86_64" : process.arch,
    }),
    [SYS.NANOSLEEP]: (s, m) => {
      const ms = (m.payload as { ms?: unknown } | undefined)?.ms;
      if (typeof ms !== "number" || !(ms >= 0) || ms > 86_400_000) throw new ErrnoError(EINVAL, "nanosleep: bad duration");
      const due = performance.now() + ms;
      let i = s.sleepers.length;
      while (i > 0 && s.sleepers[i - 1]!.due > due) i--;
      s.sleepers.splice(i, 0, { due, msg: m });
      return NO_REPLY;
    },
  },
  poll(s, proc) {
    if (s.sleepers.length === 0 || s.sleepers[0]!.due > performance.now()) return false;
    const now = performance.now();
    while (s.sleepers.length > 0 && s.sleepers[0]!.due <= now) proc.reply(s.sleepers.shift()!.msg, 0);
    return true;
  },
  nextDeadline(s) {
    return s.sleepers.length === 0 ? Number.POSITIVE_INFINITY : Math.max(0, s.sleepers[0]!.due - performance.now());
  },
};
