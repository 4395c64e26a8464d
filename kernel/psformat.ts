// `ps` as a table for people.
import type { ProcRow } from "./kernel.ts";

export function formatPs(rows: ProcRow[]): string {
  const head = ["EP", "NAME", "KIND", "PID", "TID", "CPU", "STATE", "GEN", "RESTARTS", "MSG-IN", "MSG-OUT", "WAKEUPS", "DENIED"];
  const body = rows.map((r) => [
    String(r.ep), r.name, r.kind, String(r.pid), String(r.tid), r.cpus.join(",") || "-", r.state, String(r.generation),
    String(r.restarts), String(r.msgsIn), String(r.msgsOut), String(r.wakes), String(r.denied),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i <= 2 || i === 6 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join("  ");
  return [line(head), ...body.map(line)].join("\n");
}
