// Helpers for interop tests over a TAP device: commands inside the test's network
// namespace, run asynchronously (the machine needs this thread's event loop) and
// always stopped by the test.
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";

export interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

const running = new Set<ChildProcess>();

/** Runs argv inside namespace `ns` (killed after timeoutMs). */
export function nsExec(ns: string, argv: string[], timeoutMs = 30_000): Promise<Ran> {
  const t0 = performance.now();
  const child = spawn("ip", ["netns", "exec", ns, ...argv], { stdio: ["ignore", "pipe", "pipe"] });
  running.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => (stderr += d));
  const t = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  return new Promise((resolve) => {
    child.on("close", (code) => {
      clearTimeout(t);
      running.delete(child);
      resolve({ code, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

/** Kills whatever nsExec started and is still running. */
export function killAll(): void {
  for (const c of running) c.kill("SIGKILL");
  running.clear();
}

/** FNV-1a of a file, as apps/nc.ts computes it. */
export function fnvFile(path: string): { bytes: number; hash: number } {
  const b = readFileSync(path);
  let h = 0x811c9dc5;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i]!, 0x01000193) >>> 0;
  return { bytes: b.length, hash: h };
}
