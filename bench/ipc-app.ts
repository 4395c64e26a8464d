// Benchmark app (runs inside newts): kernel sendrec round trips to the syscall
// server (getpid), and to a server that only answers PING.
import type { Proc } from "../lib/sys/proc.ts";
import { PING, SYS } from "../lib/ipc/calls.ts";
import { measureSync } from "./micro.ts";

export function main(argv: string[], proc: Proc) {
  const timeMs = Number(argv[1] ?? 1000);
  const sys = proc.endpoint("syscall");
  const getpid = measureSync("sendrec getpid", 20, () => void proc.sendrec(sys, SYS.GETPID), timeMs);
  return { status: 0, result: { getpid, cpus: proc.cpus, sleeps: proc.stats.sleeps, wakes: proc.stats.wakes, PING } };
}
