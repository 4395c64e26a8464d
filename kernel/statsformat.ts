// `ctl stats` as tables for people: one row per process in the form of the paper's
// Table 5.2, and one process's calls by kind.
import type { ProcSockStats } from "../lib/sys/counters.ts";

/** A percentage as the paper prints it ("91.20 %"); "-" where there were no such calls. */
export function fmtPct(p: number | null): string {
  return p === null ? "-" : `${p.toFixed(2)} %`;
}

/** Left-aligns the columns in `left`, right-aligns the others. */
function table(head: string[], body: string[][], left: number[]): string {
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (left.includes(i) ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join("  ").trimEnd();
  return [line(head), ...body.map(line)].join("\n");
}

/** Table 5.2: per process, calls handled in user space, selects that block, selects of all calls, accepts and reads that would block. */
export function formatStats(rows: ProcSockStats[]): string {
  if (rows.length === 0) return "no process has used the socket API";
  const head = ["EP", "NAME", "BACKEND", "STATE", "CALLS", "USER SPACE", "SELECT BLOCKS", "SELECT/ALL", "ACCEPT EAGAIN", "READ EAGAIN", "SYSCALLS"];
  const body = rows.map((r) => [
    String(r.ep), r.name, r.backend, r.state, String(r.total), fmtPct(r.table52.userspacePct), fmtPct(r.table52.selectBlockPct),
    fmtPct(r.table52.selectPerCallPct), fmtPct(r.table52.acceptAgainPct), fmtPct(r.table52.readAgainPct), String(r.syscalls),
  ]);
  return table(head, body, [1, 2, 3]);
}

/** One process's counters by call kind (the calls it made), then their totals. */
export function formatStatsKinds(r: ProcSockStats): string {
  const head = ["CALL", "CALLS", "USER SPACE", "EAGAIN", "BLOCKED", "ERRORS", "SYSCALLS"];
  const body = Object.entries(r.kinds).map(([name, k]) => [
    name, String(k.calls), String(k.userspace), String(k.wouldBlock), String(k.blocked), String(k.errors), String(k.syscalls),
  ]);
  body.push(["total", String(r.total), String(r.userspace), String(r.wouldBlock), String(r.blocked), String(r.errors), String(r.syscalls)]);
  return `${formatStats([r])}\n\n${table(head, body, [0])}`;
}
