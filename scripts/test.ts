// The test command (`npm test`): type-check, then every test under Bun with vitest.
//
// Tests that need root, a TAP device or Debian tools declare them through
// lib/sys/needs.ts; as root, the missing Debian packages are installed here
// first (apt-get), otherwise those tests report themselves skipped with the reason.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { DEBIAN_PACKAGES, haveTool } from "../lib/sys/needs.ts";

const root = new URL("..", import.meta.url).pathname;
const bin = (name: string) => `${root}node_modules/.bin/${name}`;

function run(cmd: string, args: string[]): number {
  const r = spawnSync(cmd, args, { cwd: root, stdio: "inherit" });
  return r.status ?? 1;
}

console.log("== tsc --noEmit (strict)");
if (run(bin("tsc"), ["--noEmit", "-p", "."]) !== 0) {
  console.error("type check failed");
  process.exit(1);
}

const isRoot = process.getuid?.() === 0;
const missing = Object.entries(DEBIAN_PACKAGES).filter(([tool]) => !haveTool(tool));
if (missing.length > 0) {
  if (isRoot && process.env.NEWTS_NO_APT !== "1") {
    const pkgs = [...new Set(missing.map(([, pkg]) => pkg))];
    console.log(`== installing Debian packages for the interop tests: ${pkgs.join(" ")}`);
    run("apt-get", ["update", "-qq"]);
    run("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...pkgs]);
  } else {
    console.log(`== not root: tests needing ${missing.map(([t]) => t).join(", ")} will report themselves skipped`);
  }
}

console.log("== vitest (under Bun, threads pool)");
mkdirSync(`${root}.newts`, { recursive: true });
const out = `${root}.newts/vitest.json`;
const extra = process.argv.slice(2);
const code = run(bin("bun"), [
  "--bun", bin("vitest"), "run", "--reporter=default", "--reporter=json", `--outputFile.json=${out}`, ...extra,
]);
if (existsSync(out)) {
  const r = JSON.parse(readFileSync(out, "utf8")) as {
    numPassedTests: number; numFailedTests: number; numPendingTests: number; numTodoTests: number;
  };
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
}
process.exit(code);
