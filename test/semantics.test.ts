// One suite of socket semantics (test/semantics/cases.ts) run by the same code against every
// libc backend, expecting the same results and the same errno values: "linux" (the host
// kernel's sockets), "fast" (newts sockets on shared rings) and "syscall" (the same, a system
// call per data call). Every case runs in an app process of one newts machine
// (test/fixtures/semantics.ts), one app per case, so a case that hangs or crashes is killed
// after CASE_MS and takes nothing else with it; a case's peer is a second app of the same
// backend, started when the case asks for it (a console line).
//
// NEWTS_SEMANTICS_BACKENDS picks the backends (default "linux,fast,syscall"), e.g.
//   NEWTS_SEMANTICS_BACKENDS=linux bun --bun vitest run test/semantics.test.ts
// Tests: "<backend>: <group>: <case>" for each, then "same errnos: <group>: <case>": the errno
// values each case observed (t.errno) are the same on every backend that ran it.
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { type AppExit, Machine } from "../kernel/boot.ts";
import type { Backend } from "../libc/sockets.ts";
import { CASES } from "./semantics/cases.ts";
import { type CaseResult, PEER_LINE, type PeerRequest } from "./semantics/kit.ts";

const FIX = "test/fixtures/semantics.ts";
/** The longest a case (with its peer) may take before it is killed and failed. */
const CASE_MS = 40_000;

const ALL: Backend[] = ["linux", "fast", "syscall"];
const isBackend = (s: string): s is Backend => (ALL as string[]).includes(s);
const BACKENDS: Backend[] = (process.env.NEWTS_SEMANTICS_BACKENDS ?? ALL.join(","))
  .split(",")
  .map((s) => s.trim())
  .filter((s) => s !== "")
  .map((s) => {
    if (!isBackend(s)) throw new Error(`NEWTS_SEMANTICS_BACKENDS: unknown backend '${s}'`);
    return s;
  });

/** How long a case may go on after its peer failed (it may still end, failing, by itself) before it is killed. */
const AFTER_PEER_MS = 3_000;

let m: Machine;

interface PeerOutcome {
  name: string;
  exit?: AppExit;
  error?: string;
}
/** The peers started for a runner app: their outcomes, and a promise that resolves when one has failed. */
interface Peers {
  outcomes: Promise<PeerOutcome>[];
  failed: Promise<void>;
  fail: () => void;
}
/** By runner app name (made on first use: a peer request may come before spawn() has told the name). */
const peers = new Map<string, Peers>();
function peersOf(runner: string): Peers {
  let p = peers.get(runner);
  if (!p) {
    let fail = () => {};
    const failed = new Promise<void>((res) => (fail = res));
    p = { outcomes: [], failed, fail };
    peers.set(runner, p);
  }
  return p;
}

/** Why a peer failed, or undefined if it passed. */
function peerError(p: PeerOutcome): string | undefined {
  const pr = p.exit?.result as { ok?: boolean; error?: string } | undefined;
  return p.error ?? p.exit?.error ?? (pr?.ok ? undefined : (pr?.error ?? JSON.stringify(p.exit?.result)));
}
/** Each case's result on each backend, for the errno comparison. */
const results = new Map<string, Map<Backend, CaseResult>>();

function onLog(line: string): void {
  const at = line.indexOf(`: ${PEER_LINE} `);
  if (at < 0) return;
  const runner = line.slice(0, at);
  const req = JSON.parse(line.slice(at + PEER_LINE.length + 3)) as PeerRequest;
  const p = peersOf(runner);
  const started: Promise<PeerOutcome> = m
    .spawn(FIX, ["peer", req.backend, req.case, ...req.args.map(String)])
    .then(
      (name) =>
        m.waitApp(name, CASE_MS).then(
          (exit) => ({ name, exit }),
          async (e: unknown) => {
            await m.ctl("kill", [name]).catch(() => undefined);
            return { name, error: String(e) };
          },
        ),
      (e: unknown) => ({ name: "(not started)", error: `spawn failed: ${String(e)}` }),
    )
    .then((o) => {
      if (peerError(o) !== undefined) p.fail();
      return o;
    });
  p.outcomes.push(started);
}

/** Runs one case on one backend in its own app (and its peer in another); the outcome. */
async function runCase(backend: Backend, name: string): Promise<CaseResult> {
  const group = CASES.find((c) => c.name === name)!.group;
  const app = await m.spawn(FIX, ["run", backend, name]);
  const p = peersOf(app);
  let r: CaseResult;
  try {
    // The case's own end, or its peer's failure and a little grace (the case may be blocked
    // in a call only the peer would have ended): then it is killed.
    const exited = m.waitApp(app, CASE_MS);
    const exit = await Promise.race([
      exited,
      p.failed.then(() => Promise.race([exited, new Promise<never>((_, rej) => setTimeout(() => rej(new Error("its peer failed")), AFTER_PEER_MS))])),
    ]);
    const got = (exit.result as { results?: CaseResult[] } | undefined)?.results?.[0];
    r = got ?? { name, group, ok: false, ms: 0, errnos: [], error: `the app returned no result: ${exit.error ?? JSON.stringify(exit.result)}` };
  } catch (e) {
    await m.ctl("kill", [app]).catch(() => undefined);
    r = { name, group, ok: false, ms: 0, errnos: [], error: `killed: ${e instanceof Error ? e.message : String(e)}` };
  }
  for (const o of await Promise.all(p.outcomes)) {
    const why = peerError(o);
    if (why !== undefined) r = { ...r, ok: false, error: `${r.error ? `${r.error}; ` : ""}peer ${o.name}: ${why}` };
  }
  peers.delete(app);
  return r;
}

beforeAll(async () => {
  m = await Machine.boot({ apps: [], onLog });
});
afterAll(async () => {
  await m?.shutdown();
});

for (const backend of BACKENDS) {
  describe(backend, () => {
    for (const c of CASES) {
      test(`${backend}: ${c.group}: ${c.name}`, async () => {
        const r = await runCase(backend, c.name);
        if (!results.has(c.name)) results.set(c.name, new Map());
        results.get(c.name)!.set(backend, r);
        if (!r.ok) throw new Error(`${backend}: ${c.name}: ${r.error}`);
        expect(r.ok).toBe(true);
      }, CASE_MS + 20_000);
    }
  });
}

describe("same errnos on every backend", () => {
  for (const c of CASES) {
    test(`same errnos: ${c.group}: ${c.name}`, () => {
      const by = results.get(c.name);
      const seen = BACKENDS.filter((b) => by?.has(b)).map((b) => [b, by!.get(b)!.errnos.join(" ")] as const);
      expect(seen.length, "no backend ran the case").toBeGreaterThan(0);
      const first = seen[0]![1];
      if (seen.some(([, e]) => e !== first)) {
        throw new Error(`errno sequences differ:\n${seen.map(([b, e]) => `  ${b.padEnd(8)} ${e || "(none)"}`).join("\n")}`);
      }
    });
  }
});
