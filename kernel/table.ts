// The boot table: which processes the kernel starts, on which CPU, and whom each
// may call. Endpoints are given in this order, from 1 (0 is the kernel).
import { K } from "../lib/ipc/calls.ts";
import type { ProcKind } from "../lib/ipc/calls.ts";

export interface BootEntry {
  name: string;
  /** Module path relative to the repository root. */
  module: string;
  kind: ProcKind;
  /** Boot-table CPU; mapped onto the CPUs this machine allows (modulo their count). */
  cpu: number;
  /** Endpoints (by name) this process may send to. Replies are always allowed to a waiting caller. */
  ipc: string[];
  /** Kernel calls this process may make (EXIT, LOG and WHOIS are allowed to all). */
  kcalls: number[];
  args?: string[];
  /** More names for this endpoint (the single stack answers for nic, pf, ip, udp and tcp). */
  aliases?: string[];
}

const COMMON_KCALLS = [K.EXIT, K.LOG, K.WHOIS];
const STACK_KCALLS = [K.CHAN_OPEN, K.POOL_CREATE, K.GRANT_APP];

/** The system servers, in start order. */
export const SERVERS: BootEntry[] = [
  { name: "rs", module: "servers/rs.ts", kind: "server", cpu: 0, ipc: [], kcalls: [K.RESTART, K.KILL, K.PROCS] },
  { name: "syscall", module: "servers/syscall.ts", kind: "server", cpu: 0, ipc: ["tcp", "udp", "ip", "pf", "rs"], kcalls: [K.PROCS, K.SPAWN, K.CHAN_OPEN] },
  // The stack. Sharing a pool with a server needs it in the ACL too: packets travel up
  // in the driver's pool and down in the transports' pools.
  { name: "nic", module: "drivers/nic.ts", kind: "server", cpu: 1, ipc: ["pf", "ip", "tcp", "udp"], kcalls: STACK_KCALLS },
  { name: "pf", module: "servers/pf.ts", kind: "server", cpu: 1, ipc: ["nic", "ip", "tcp", "udp"], kcalls: STACK_KCALLS },
  { name: "ip", module: "servers/ip.ts", kind: "server", cpu: 1, ipc: ["nic", "pf", "tcp", "udp", "syscall"], kcalls: STACK_KCALLS },
  { name: "udp", module: "servers/udp.ts", kind: "server", cpu: 1, ipc: ["ip", "pf", "nic", "syscall"], kcalls: STACK_KCALLS },
  { name: "tcp", module: "servers/tcp.ts", kind: "server", cpu: 1, ipc: ["ip", "pf", "nic", "syscall"], kcalls: STACK_KCALLS },
];

/** `--stack single`: the same layers in one server (the paper's combined stack). */
export const SERVERS_SINGLE: BootEntry[] = [
  SERVERS[0]!,
  SERVERS[1]!,
  {
    name: "stack", module: "servers/stack.ts", kind: "server", cpu: 1, ipc: ["syscall"], kcalls: STACK_KCALLS,
    aliases: ["nic", "pf", "ip", "udp", "tcp"],
  },
];

/** The table entry of an app: it may call the syscall server only. */
export function appEntry(name: string, module: string, args: string[], cpu = 0): BootEntry {
  return { name, module, kind: "app", cpu, ipc: ["syscall"], kcalls: [], args };
}

export function kcallsOf(e: BootEntry): Set<number> {
  return new Set([...COMMON_KCALLS, ...e.kcalls]);
}
