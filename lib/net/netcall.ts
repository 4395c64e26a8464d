// Calls forwarded by the syscall server to a stack server, and their completions.
// A stack server may complete a call at once or hold it (a blocking recv, accept,
// connect or ping) and complete it later, in any order.
import { NET } from "../ipc/calls.ts";
import type { Message } from "../ipc/message.ts";
import type { Proc } from "../sys/proc.ts";
import { ErrnoError, errnoName } from "../sys/errno.ts";
import { NO_REPLY, type Handler } from "../sys/server.ts";

export interface NetCall {
  req: number;
  /** The app the call is made for. */
  app: number;
  op: number;
  sock?: number;
  args: Record<string, unknown>;
  /** Endpoint to complete to (the syscall server). */
  from: number;
}

export function netCallOf(m: Message): NetCall | null {
  const p = m.payload as Partial<NetCall> | undefined;
  if (!p || typeof p.req !== "number" || typeof p.op !== "number" || typeof p.app !== "number") return null;
  return { req: p.req, app: p.app, op: p.op, sock: typeof p.sock === "number" ? p.sock : undefined, args: (p.args ?? {}) as Record<string, unknown>, from: m.src };
}

export function complete(proc: Proc, c: NetCall, value: unknown): void {
  proc.send(c.from, NET.DONE, { req: c.req, value });
}

export function fail(proc: Proc, c: NetCall, errno: number, error?: string): void {
  proc.send(c.from, NET.DONE, { req: c.req, errno, error: error ?? errnoName(errno) });
}

/** Number argument or a default; NaN and non-numbers give the default. */
export function num(args: Record<string, unknown>, key: string, dflt: number): number {
  const v = args[key];
  return typeof v === "number" && Number.isFinite(v) ? v : dflt;
}

/** Byte argument (msgpack gives Uint8Array or Buffer). */
export function bytes(args: Record<string, unknown>, key: string): Uint8Array | null {
  const v = args[key];
  return v instanceof Uint8Array ? v : null;
}

/**
 * The NET.CALL handler of a stack layer: decodes the call, runs `onCall`, turns
 * an ErrnoError into a failed completion (anything else is a bug: it crashes the
 * server), then runs `after` (flush ports, save state).
 */
export function netCallHandler<S>(onCall: (s: S, proc: Proc, c: NetCall) => void, after?: (s: S) => void): Handler<S> {
  return (s, m, proc) => {
    const c = netCallOf(m);
    if (!c) return NO_REPLY;
    try {
      onCall(s, proc, c);
    } catch (e) {
      if (!(e instanceof ErrnoError)) throw e;
      fail(proc, c, e.errno, e.message);
    }
    after?.(s);
    return NO_REPLY;
  };
}

/** A stack layer's handler of one forwarded call; it completes the call now or later, or throws an ErrnoError. */
export type NetCallFn<S> = (s: S, c: NetCall) => void;

/**
 * The NET.CALL handler of a stack layer from its table of calls (by the system
 * call's number): a call the layer does not know fails with `unknown`.
 */
export function netCallTable<S>(name: string, calls: Record<number, NetCallFn<S>>, unknown: number, after?: (s: S) => void): Handler<S> {
  return netCallHandler<S>((s, _proc, c) => {
    const f = calls[c.op];
    if (!f) throw new ErrnoError(unknown, `${name}: call ${c.op} not supported`);
    f(s, c);
  }, after);
}
