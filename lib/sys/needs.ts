// What the tests and benchmarks need from the machine: root, /dev/net/tun, Debian tools.
// A test or benchmark that lacks something is skipped with a printed reason, never
// silently; `npm test` (scripts/test.ts) installs the Debian packages as root.
import { existsSync } from "node:fs";
import { spawnSync } from "node:child_process";

/** Tool on PATH -> the Debian package that provides it. scripts/test.ts installs these as root. */
export const DEBIAN_PACKAGES: Record<string, string> = {
  ip: "iproute2",
  ping: "iputils-ping",
  tcpdump: "tcpdump",
  curl: "curl",
  memccapable: "libmemcached-tools", // libmemcached's protocol checker, run against apps/memcached.ts
  memcslap: "libmemcached-tools", // libmemcached's load generator (test/apps-tap.test.ts)
  httperf: "httperf", // the paper's HTTP load generator (test/apps-tap.test.ts)
  wrk: "wrk",
  ab: "apache2-utils",
};

export function haveTool(tool: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" }).status === 0;
}

/** Returns null when everything is there, else the reason to skip. Prints the reason. */
export function lacking(what: { root?: boolean; tun?: boolean; tools?: string[] }, testName: string): string | null {
  const reasons: string[] = [];
  if (what.root && process.getuid?.() !== 0) reasons.push("needs root");
  if (what.tun && !existsSync("/dev/net/tun")) reasons.push("needs /dev/net/tun");
  for (const t of what.tools ?? []) if (!haveTool(t)) reasons.push(`needs ${t} (Debian ${DEBIAN_PACKAGES[t] ?? t})`);
  if (reasons.length === 0) return null;
  const why = `${testName}: skipped, ${reasons.join(", ")}`;
  console.warn(why);
  return why;
}
