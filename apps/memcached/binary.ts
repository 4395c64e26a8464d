// memcached's binary protocol: an incremental parser (bytes in, requests or protocol errors
// out, never a throw on any bytes, never more buffered than one item) and the executor.
// A packet is a 24-byte header (magic 0x80, opcode, key length, extras length, data type,
// vbucket, total body length, opaque, CAS) and a body of extras, key and value; the
// response (magic 0x81) echoes the opcode and opaque, with a status where the vbucket was.
//
// The checks follow memcached 1.6's proto_bin.c (dispatch_bin_command): a key or key plus
// extras longer than the body is "Unknown command" and a hang-up; a key over 250 bytes or
// extras/lengths that do not fit the opcode are "Invalid arguments" and a hang-up; an
// unknown opcode is "Unknown command" with its body swallowed; a value too large for -I is
// "Too large." with the value swallowed (not buffered); a byte other than the request magic
// where a header starts hangs up. Quiet variants (GetQ, SetQ, ...) send nothing on success
// (GetQ/GetKQ/GATQ nothing on a miss), but still send errors.
import { type Action, type Ctx, InBuf, type Out } from "./framing.ts";
import { bytesToKey, itemTotal, KEY_MAX_LENGTH, keyBytes, settingsStats, type StoreMode } from "./store.ts";

export const MAGIC_REQ = 0x80;
export const MAGIC_RES = 0x81;
export const HEADER = 24;

export const OP = {
  GET: 0x00, SET: 0x01, ADD: 0x02, REPLACE: 0x03, DELETE: 0x04, INCREMENT: 0x05, DECREMENT: 0x06, QUIT: 0x07,
  FLUSH: 0x08, GETQ: 0x09, NOOP: 0x0a, VERSION: 0x0b, GETK: 0x0c, GETKQ: 0x0d, APPEND: 0x0e, PREPEND: 0x0f,
  STAT: 0x10, SETQ: 0x11, ADDQ: 0x12, REPLACEQ: 0x13, DELETEQ: 0x14, INCREMENTQ: 0x15, DECREMENTQ: 0x16,
  QUITQ: 0x17, FLUSHQ: 0x18, APPENDQ: 0x19, PREPENDQ: 0x1a, VERBOSITY: 0x1b, TOUCH: 0x1c, GAT: 0x1d, GATQ: 0x1e,
  GATK: 0x23, GATKQ: 0x24,
} as const;

export const STATUS = {
  SUCCESS: 0x00, KEY_ENOENT: 0x01, KEY_EEXISTS: 0x02, E2BIG: 0x03, EINVAL: 0x04, NOT_STORED: 0x05,
  DELTA_BADVAL: 0x06, UNKNOWN_COMMAND: 0x81, ENOMEM: 0x82,
} as const;

/** memcached's write_bin_error texts. */
export const STATUS_TEXT: Record<number, string> = {
  [STATUS.KEY_ENOENT]: "Not found",
  [STATUS.KEY_EEXISTS]: "Data exists for key.",
  [STATUS.E2BIG]: "Too large.",
  [STATUS.EINVAL]: "Invalid arguments",
  [STATUS.NOT_STORED]: "Not stored.",
  [STATUS.DELTA_BADVAL]: "Non-numeric server-side value for incr or decr",
  [STATUS.UNKNOWN_COMMAND]: "Unknown command",
  [STATUS.ENOMEM]: "Out of memory",
};

/** A quiet opcode's loud twin. */
const QUIET: Record<number, number> = {
  [OP.GETQ]: OP.GET, [OP.GETKQ]: OP.GETK, [OP.SETQ]: OP.SET, [OP.ADDQ]: OP.ADD, [OP.REPLACEQ]: OP.REPLACE,
  [OP.DELETEQ]: OP.DELETE, [OP.INCREMENTQ]: OP.INCREMENT, [OP.DECREMENTQ]: OP.DECREMENT, [OP.QUITQ]: OP.QUIT,
  [OP.FLUSHQ]: OP.FLUSH, [OP.APPENDQ]: OP.APPEND, [OP.PREPENDQ]: OP.PREPEND, [OP.GATQ]: OP.GAT, [OP.GATKQ]: OP.GATK,
};

export interface BinHeader {
  magic: number;
  opcode: number;
  keylen: number;
  extlen: number;
  datatype: number;
  vbucket: number;
  bodylen: number;
  opaque: number;
  cas: bigint;
}

export interface BinRequest extends BinHeader {
  /** The opcode with quiet variants mapped to their loud twins. */
  cmd: number;
  quiet: boolean;
  key: string;
  extras: Uint8Array;
  /** The value (storage commands); empty for a too_large request, whose value is swallowed. */
  value: Uint8Array;
}

export type BinEvent =
  | { kind: "request"; req: BinRequest }
  | { kind: "too_large"; req: BinRequest }
  /** A protocol error to answer with `status` (then hang up if `close`). */
  | { kind: "error"; opcode: number; opaque: number; status: number; close: boolean }
  | { kind: "close"; why: string };

export function parseHeader(b: Uint8Array): BinHeader {
  const v = new DataView(b.buffer, b.byteOffset, HEADER);
  return {
    magic: v.getUint8(0), opcode: v.getUint8(1), keylen: v.getUint16(2), extlen: v.getUint8(4), datatype: v.getUint8(5),
    vbucket: v.getUint16(6), bodylen: v.getUint32(8), opaque: v.getUint32(12), cas: v.getBigUint64(16),
  };
}

/** Whether the header's lengths fit its opcode (dispatch_bin_command's checks). null: unknown opcode. */
function lengthsOk(cmd: number, h: BinHeader): boolean | null {
  const { keylen: k, extlen: e, bodylen: b } = h;
  switch (cmd) {
    case OP.VERSION:
    case OP.NOOP:
    case OP.QUIT:
      return e === 0 && k === 0 && b === 0;
    case OP.FLUSH:
      return k === 0 && b === e && (e === 0 || e === 4);
    case OP.SET:
    case OP.ADD:
    case OP.REPLACE:
      return e === 8 && k !== 0 && b >= k + 8;
    case OP.GET:
    case OP.GETK:
      return e === 0 && b === k && k > 0;
    case OP.DELETE:
      return k > 0 && e === 0 && b === k;
    case OP.INCREMENT:
    case OP.DECREMENT:
      return k > 0 && e === 20 && b === k + 20;
    case OP.APPEND:
    case OP.PREPEND:
      return k > 0 && e === 0;
    case OP.STAT:
      return e === 0 && b === k;
    case OP.TOUCH:
    case OP.GAT:
    case OP.GATK:
      return e === 4 && k !== 0 && b === k + 4;
    case OP.VERBOSITY:
      return e === 4 && k === 0 && b === 4;
    default:
      return null;
  }
}

const isStorage = (cmd: number) =>
  cmd === OP.SET || cmd === OP.ADD || cmd === OP.REPLACE || cmd === OP.APPEND || cmd === OP.PREPEND;

/** The incremental binary-protocol parser of one connection. */
export class BinaryParser {
  private readonly in = new InBuf();
  private state: "header" | "body" | "keyext" | "swallow" | "dead" = "header";
  private hdr: BinHeader | null = null;
  private need = 0;
  readonly itemSizeMax: number;

  constructor(opts: { itemSizeMax?: number } = {}) {
    this.itemSizeMax = opts.itemSizeMax ?? 1024 * 1024;
  }

  push(chunk: Uint8Array): void {
    if (this.state !== "dead") this.in.push(chunk);
  }

  get buffered(): number {
    return this.in.length;
  }

  next(): BinEvent | null {
    for (;;) {
      switch (this.state) {
        case "dead":
          return null;
        case "swallow": {
          const n = Math.min(this.need, this.in.length);
          this.in.skip(n);
          this.need -= n;
          if (this.need > 0) return null;
          this.state = "header";
          continue;
        }
        case "header": {
          if (this.in.length === 0) return null;
          if (this.in.at(0) !== MAGIC_REQ) {
            this.state = "dead";
            return { kind: "close", why: "bad magic" };
          }
          if (this.in.length < HEADER) return null;
          const h = parseHeader(this.in.peek(HEADER));
          this.in.skip(HEADER);
          const err = (status: number, close: boolean): BinEvent => {
            if (close) this.state = "dead";
            return { kind: "error", opcode: h.opcode, opaque: h.opaque, status, close };
          };
          if (h.keylen > h.bodylen || h.keylen + h.extlen > h.bodylen) return err(STATUS.UNKNOWN_COMMAND, true);
          if (h.keylen > KEY_MAX_LENGTH) return err(STATUS.EINVAL, true);
          const cmd = QUIET[h.opcode] ?? h.opcode;
          const ok = lengthsOk(cmd, h);
          if (ok === null) {
            this.state = "swallow";
            this.need = h.bodylen;
            return err(STATUS.UNKNOWN_COMMAND, false);
          }
          if (!ok) return err(STATUS.EINVAL, true);
          this.hdr = h;
          const vlen = h.bodylen - h.keylen - h.extlen;
          if (isStorage(cmd) && itemTotal(h.keylen, vlen) > this.itemSizeMax) {
            this.state = "keyext";
            this.need = h.keylen + h.extlen;
          } else {
            this.state = "body";
            this.need = h.bodylen;
          }
          continue;
        }
        case "body":
        case "keyext": {
          if (this.in.length < this.need) return null;
          const h = this.hdr!;
          const extras = this.in.take(h.extlen);
          const key = bytesToKey(this.in.peek(h.keylen));
          this.in.skip(h.keylen);
          const cmd = QUIET[h.opcode] ?? h.opcode;
          const req: BinRequest = { ...h, cmd, quiet: cmd !== h.opcode, key, extras, value: new Uint8Array(0) };
          this.hdr = null;
          if (this.state === "keyext") {
            this.state = "swallow";
            this.need = h.bodylen - h.keylen - h.extlen;
            return { kind: "too_large", req };
          }
          const vlen = h.bodylen - h.keylen - h.extlen;
          if (vlen > 0) req.value = this.in.take(vlen);
          this.state = "header";
          return { kind: "request", req };
        }
      }
    }
  }
}

// ---- responses -------------------------------------------------------------------------

/** A response packet's header plus extras and key (the value is sent after it, uncopied). */
export function responseHead(
  opcode: number, status: number, opaque: number, cas: bigint | number, extras: Uint8Array | null, key: Uint8Array | null, valueLen: number,
): Uint8Array {
  const el = extras?.length ?? 0;
  const kl = key?.length ?? 0;
  const b = new Uint8Array(HEADER + el + kl);
  const v = new DataView(b.buffer);
  v.setUint8(0, MAGIC_RES);
  v.setUint8(1, opcode);
  v.setUint16(2, kl);
  v.setUint8(4, el);
  v.setUint8(5, 0);
  v.setUint16(6, status);
  v.setUint32(8, el + kl + valueLen);
  v.setUint32(12, opaque >>> 0);
  v.setBigUint64(16, BigInt(cas));
  if (extras) b.set(extras, HEADER);
  if (key) b.set(key, HEADER + el);
  return b;
}

/** An error response with memcached's text for the status. */
export function errorResponse(opcode: number, opaque: number, status: number): Uint8Array {
  const text = keyBytes(STATUS_TEXT[status] ?? "");
  const head = responseHead(opcode, status, opaque, 0, null, null, text.length);
  const b = new Uint8Array(head.length + text.length);
  b.set(head, 0);
  b.set(text, head.length);
  return b;
}

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0);
  return b;
}

function u64(n: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, n));
  return b;
}

// ---- execution -------------------------------------------------------------------------

/** Runs one binary-protocol event against the cache; responses go to `out`. */
export function execBinary(ev: BinEvent, ctx: Ctx, out: Out): Action {
  const store = ctx.store;
  if (ev.kind === "close") return "close";
  if (ev.kind === "error") {
    out(errorResponse(ev.opcode, ev.opaque, ev.status));
    return ev.close ? "close-after-write" : "ok";
  }
  const r = ev.req;
  const fail = (status: number): Action => {
    out(errorResponse(r.opcode, r.opaque, status));
    return "ok";
  };
  const ok = (cas: bigint | number = 0, extras: Uint8Array | null = null, key: Uint8Array | null = null, value: Uint8Array | null = null): Action => {
    if (r.quiet) return "ok";
    out(responseHead(r.opcode, STATUS.SUCCESS, r.opaque, cas, extras, key, value?.length ?? 0));
    if (value && value.length > 0) out(value);
    return "ok";
  };
  if (ev.kind === "too_large") {
    store.counters.store_too_large++;
    if (r.cmd === OP.SET) store.remove(r.key);
    return fail(STATUS.E2BIG);
  }
  const ext = new DataView(r.extras.buffer, r.extras.byteOffset, r.extras.length);
  switch (r.cmd) {
    case OP.GET:
    case OP.GETK:
    case OP.TOUCH:
    case OP.GAT:
    case OP.GATK: {
      const touch = r.cmd === OP.TOUCH || r.cmd === OP.GAT || r.cmd === OP.GATK;
      const withKey = r.cmd === OP.GETK || r.cmd === OP.GATK;
      const it = store.fetch(r.key, touch ? { touch: store.realtime(ext.getUint32(0)) } : {});
      if (!it) {
        if (r.quiet) return "ok";
        if (withKey) {
          const k = keyBytes(r.key);
          out(responseHead(r.opcode, STATUS.KEY_ENOENT, r.opaque, 0, null, k, 0));
          return "ok";
        }
        return fail(STATUS.KEY_ENOENT);
      }
      const value = r.cmd === OP.TOUCH ? null : it.value;
      out(responseHead(r.opcode, STATUS.SUCCESS, r.opaque, it.cas, u32(it.flags), withKey ? keyBytes(r.key) : null, value?.length ?? 0));
      if (value && value.length > 0) out(value);
      return "ok";
    }
    case OP.SET:
    case OP.ADD:
    case OP.REPLACE:
    case OP.APPEND:
    case OP.PREPEND: {
      const hasExtras = r.extlen === 8;
      const flags = hasExtras ? ext.getUint32(0) : 0;
      const exptime = hasExtras ? ext.getUint32(4) : 0;
      let mode: StoreMode =
        r.cmd === OP.SET ? "set" : r.cmd === OP.ADD ? "add" : r.cmd === OP.REPLACE ? "replace" : r.cmd === OP.APPEND ? "append" : "prepend";
      if (r.cas !== 0n && hasExtras) mode = "cas";
      const res = store.store(mode, r.key, r.value, flags, exptime, r.cas);
      switch (res.status) {
        case "STORED":
          return ok(res.item!.cas);
        case "EXISTS":
          return fail(STATUS.KEY_EEXISTS);
        case "NOT_FOUND":
          return fail(STATUS.KEY_ENOENT);
        case "NOT_STORED":
          return fail(r.cmd === OP.ADD ? STATUS.KEY_EEXISTS : r.cmd === OP.REPLACE ? STATUS.KEY_ENOENT : STATUS.NOT_STORED);
        case "TOO_LARGE":
          return fail(STATUS.E2BIG);
        case "NO_MEMORY":
          return fail(STATUS.ENOMEM);
      }
      return "ok";
    }
    case OP.DELETE: {
      const res = store.delete(r.key, r.cas);
      if (res === "DELETED") return ok(0);
      return fail(res === "EXISTS" ? STATUS.KEY_EEXISTS : STATUS.KEY_ENOENT);
    }
    case OP.INCREMENT:
    case OP.DECREMENT: {
      const delta = ext.getBigUint64(0);
      const initial = ext.getBigUint64(8);
      const exptime = ext.getUint32(16);
      const res = store.incrDecr(r.key, r.cmd === OP.INCREMENT, delta, r.cas);
      switch (res.status) {
        case "OK":
          return ok(res.item!.cas, null, null, u64(res.value!));
        case "NOT_FOUND": {
          if (exptime === 0xffffffff) return fail(STATUS.KEY_ENOENT);
          const it = store.create(r.key, keyBytes(initial.toString()), 0, store.realtime(exptime));
          if (!it) return fail(STATUS.NOT_STORED);
          return ok(it.cas, null, null, u64(initial));
        }
        case "NON_NUMERIC":
          return fail(STATUS.DELTA_BADVAL);
        case "EXISTS":
          return fail(STATUS.KEY_EEXISTS);
        case "NO_MEMORY":
          return fail(STATUS.ENOMEM);
      }
      return "ok";
    }
    case OP.QUIT:
      ok(0);
      return "close-after-write";
    case OP.FLUSH:
      store.flush(r.extlen === 4 ? ext.getUint32(0) : 0);
      return ok(0);
    case OP.NOOP:
      return ok(0);
    case OP.VERSION:
      return ok(0, null, null, keyBytes(ctx.version));
    case OP.VERBOSITY:
      ctx.verbosity = Math.min(ext.getUint32(0), 2);
      return ok(0);
    case OP.STAT: {
      let lines: [string, string | number][] | null;
      if (r.key === "reset") {
        ctx.resetStats();
        lines = [];
      } else if (r.key === "settings") {
        lines = settingsStats(store, { ...ctx.settings, verbosity: ctx.verbosity, shutdown: ctx.shutdownEnabled });
      } else lines = ctx.stats(r.key);
      if (lines === null) return fail(STATUS.KEY_ENOENT);
      for (const [k, v] of lines) {
        const kb = keyBytes(k);
        const vb = keyBytes(String(v));
        out(responseHead(r.opcode, STATUS.SUCCESS, r.opaque, 0, null, kb, vb.length));
        if (vb.length > 0) out(vb);
      }
      out(responseHead(r.opcode, STATUS.SUCCESS, r.opaque, 0, null, null, 0));
      return "ok";
    }
  }
  return fail(STATUS.UNKNOWN_COMMAND);
}
