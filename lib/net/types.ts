// Shared shapes of the network code: the parsed forms (Repr) that the wire-format
// parsers produce and the TCP state machine consumes. Wire code lives beside this
// file (one file per protocol); the TCP machine lives in lib/net/tcp/.

/** TCP header flag bits, as on the wire (byte 13 of the header). */
export const TcpFlag = {
  FIN: 0x01,
  SYN: 0x02,
  RST: 0x04,
  PSH: 0x08,
  ACK: 0x10,
  URG: 0x20,
  ECE: 0x40,
  CWR: 0x80,
} as const;

/** TCP options newts understands (RFC 9293 MSS, RFC 7323 WS/TS, RFC 2018 SACK). */
export interface TcpOptions {
  /** Maximum segment size (kind 2), only on SYN. */
  mss?: number;
  /** Window scale shift count 0..14 (kind 3), only on SYN. */
  wscale?: number;
  /** SACK-permitted (kind 4), only on SYN. */
  sackPermitted?: boolean;
  /** SACK blocks (kind 5): [left, right) sequence-number pairs, at most 4. */
  sack?: Array<[number, number]>;
  /** Timestamps (kind 8): TSval and TSecr, unsigned 32-bit. */
  timestamp?: { val: number; ecr: number };
}

/** A parsed TCP segment. Sequence numbers are unsigned 32-bit integers (0..2^32-1). */
export interface TcpRepr {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  /** Bitmask of TcpFlag. */
  flags: number;
  /** The raw 16-bit window field (unscaled). */
  window: number;
  urgent: number;
  options: TcpOptions;
  payload: Uint8Array;
}

/** Result of parsing untrusted bytes: a value, or an error saying what was wrong. Parsers never throw. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };
