// The Backend contract: the "wire" under the NIC, moving whole Ethernet frames between newts and the outside.
import { parseMac } from "../../lib/net/addr.ts";

/** Counters every backend keeps. A frame the wire lost on purpose (faulty.ts) is not txDropped. */
export interface BackendStats {
  rxFrames: number; // frames handed to onFrame
  txFrames: number; // frames accepted by send()
  rxBytes: number;
  txBytes: number;
  txDropped: number; // send() returned false: no room now, or the frame was bad
  rxErrors: number; // frames read but not delivered: runt, oversize, wrong peer
}

/**
 * A backend is used from a synchronous worker loop: no call may block or need the event loop.
 *
 * Ownership: `recv` lends each frame to `onFrame`; the bytes are valid only until onFrame
 * returns (they alias the backend's receive buffer), so copy what you keep. `send` never keeps
 * `frame` after it returns; a backend that queues copies it.
 */
export interface Backend {
  readonly name: string;
  /** The NIC's MAC (DEFAULT_MAC unless configured). The backend does not filter on it. */
  readonly mac: Uint8Array;
  /** Non-blocking: hands up to `max` frames to onFrame; returns how many. Never blocks. */
  recv(max: number, onFrame: (frame: Uint8Array) => void): number;
  /** Non-blocking send of one frame; false (and txDropped counted) if it could not be sent now. */
  send(frame: Uint8Array): boolean;
  /** A file descriptor that polls readable when recv has work, or -1. */
  readonly fd: number;
  stats(): BackendStats;
  /** Releases the fd and whatever the backend set up; idempotent. */
  close(): void;
}

/** QEMU's default guest MAC, 52:54:00:12:34:56 (a locally administered address). */
export const DEFAULT_MAC_TEXT = "52:54:00:12:34:56";

/** Smallest frame a backend accepts: an Ethernet header (dst, src, EtherType). */
export const MIN_FRAME = 14;
/** Largest frame a backend accepts (also the pcap snaplen). */
export const MAX_FRAME = 65535;

export function zeroStats(): BackendStats {
  return { rxFrames: 0, txFrames: 0, rxBytes: 0, txBytes: 0, txDropped: 0, rxErrors: 0 };
}

/** A fresh copy of the default MAC, or the parsed `text`; throws on bad text (a configuration error). */
export function macOf(text: string | Uint8Array | undefined): Uint8Array {
  if (text instanceof Uint8Array) {
    if (text.length !== 6) throw new Error(`backend: MAC must be 6 bytes, got ${text.length}`);
    return text.slice();
  }
  const mac = parseMac(text ?? DEFAULT_MAC_TEXT);
  if (!mac) throw new Error(`backend: bad MAC address "${text}"`);
  return mac;
}
