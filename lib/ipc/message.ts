// Kernel IPC messages: a fixed binary header the kernel routes on, then a
// msgpackr-encoded payload the kernel validates but does not re-encode.
//
//   byte 0  dst    i32  destination endpoint (0 = kernel)
//   byte 4  src    i32  source endpoint, overwritten by the kernel (cannot be forged)
//   byte 8  type   i32  message type (lib/ipc/calls.ts)
//   byte 12 id     i32  call id, matches a reply to its sendrec
//   byte 16 flags  i32  CALL | REPLY | ERROR
//   byte 20 payload (msgpackr)
import { Packr } from "msgpackr";

export const MSG_HDR = 20;
export const OFF_DST = 0;
export const OFF_SRC = 4;
export const OFF_TYPE = 8;
export const OFF_ID = 12;
export const OFF_FLAGS = 16;

export const F_CALL = 1; // a sendrec: the sender blocks for a reply with the same id
export const F_REPLY = 2; // a reply to a CALL
export const F_ERROR = 4; // a reply whose payload is { errno, error }

/** Largest message (header + payload) a mailbox accepts. */
export const MAX_MSG = 16 * 1024;

// One encoder per thread; plain structures only (no records/structured clones), so
// any msgpack implementation could speak to newts.
const packr = new Packr({ useRecords: false, moreTypes: false });

export interface Message {
  dst: number;
  src: number;
  type: number;
  id: number;
  flags: number;
  payload: unknown;
}

export function encodePayload(payload: unknown): Uint8Array {
  return packr.pack(payload);
}

/** Encodes a header into a fresh 20-byte array. */
export function encodeHeader(dst: number, src: number, type: number, id: number, flags: number): Uint8Array {
  const h = new Uint8Array(MSG_HDR);
  const v = new DataView(h.buffer);
  v.setInt32(OFF_DST, dst, true);
  v.setInt32(OFF_SRC, src, true);
  v.setInt32(OFF_TYPE, type, true);
  v.setInt32(OFF_ID, id, true);
  v.setInt32(OFF_FLAGS, flags, true);
  return h;
}

/** Header + payload as one buffer. */
export function encodeMessage(m: Omit<Message, "payload">, payload: unknown): Uint8Array {
  const body = encodePayload(payload);
  const out = new Uint8Array(MSG_HDR + body.length);
  out.set(encodeHeader(m.dst, m.src, m.type, m.id, m.flags), 0);
  out.set(body, MSG_HDR);
  return out;
}

export type Decoded = { ok: true; msg: Message } | { ok: false; error: string; header?: Omit<Message, "payload"> };

export function decodeHeader(b: Uint8Array): Omit<Message, "payload"> | null {
  if (b.length < MSG_HDR) return null;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return {
    dst: v.getInt32(OFF_DST, true),
    src: v.getInt32(OFF_SRC, true),
    type: v.getInt32(OFF_TYPE, true),
    id: v.getInt32(OFF_ID, true),
    flags: v.getInt32(OFF_FLAGS, true),
  };
}

/** Decodes untrusted bytes. Never throws. */
export function decodeMessage(b: Uint8Array): Decoded {
  const header = decodeHeader(b);
  if (!header) return { ok: false, error: `message of ${b.length} bytes is shorter than its ${MSG_HDR}-byte header` };
  if (b.length === MSG_HDR) return { ok: true, msg: { ...header, payload: undefined } };
  try {
    const payload = packr.unpack(b.subarray(MSG_HDR));
    return { ok: true, msg: { ...header, payload } };
  } catch (e) {
    return { ok: false, error: `undecodable payload: ${(e as Error).message}`, header };
  }
}

/** Overwrites the source endpoint in an encoded message (the kernel stamps senders). */
export function stampSource(b: Uint8Array, src: number): void {
  new DataView(b.buffer, b.byteOffset, b.byteLength).setInt32(OFF_SRC, src, true);
}
