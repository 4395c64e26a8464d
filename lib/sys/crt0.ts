// Process start-up, the C runtime's crt0 for newts: every worker runs this file.
// It builds the runtime from workerData, pins the thread, loads the program and
// runs it: a server module exports `server` (a ServerDef), an app exports `main`.
import { workerData } from "node:worker_threads";
import { Proc, type ProcInit } from "./proc.ts";
import { K } from "../ipc/calls.ts";
import { serve, type ServerDef } from "./server.ts";
import { setCurrent } from "./current.ts";

const init = workerData as ProcInit;
const proc = new Proc(init);
setCurrent(proc);
proc.start();

const mod = (await import(init.module)) as {
  server?: ServerDef<unknown>;
  main?: (argv: string[], proc: Proc) => unknown;
};

if (mod.server) {
  serve(proc, mod.server);
} else if (mod.main) {
  let status = 0;
  let result: unknown;
  let error: string | undefined;
  try {
    const r = await mod.main([init.name, ...init.args], proc);
    if (typeof r === "number") status = r;
    else if (r && typeof r === "object" && "status" in r) {
      status = Number((r as { status: unknown }).status) || 0;
      result = (r as { result?: unknown }).result;
    } else result = r;
  } catch (e) {
    status = 1;
    error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  }
  proc.send(0, K.EXIT, { status, result, error });
  // The kernel terminates us once it has read the exit; idle meanwhile.
  for (;;) proc.idle(50);
} else {
  throw new Error(`${init.module} exports neither server nor main`);
}
