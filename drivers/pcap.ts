// A pcap writer (classic libpcap format, Ethernet, microseconds) and a Backend wrapper that records every frame.
import { closeSync, openSync, writeSync } from "node:fs";
import type { Backend, BackendStats } from "./backends/backend.ts";

//  Global header (24 bytes, little-endian as written here)
//  0       4      6      8        12       16        20
//  +-------+------+------+--------+--------+---------+---------+
//  | magic | vmaj | vmin | thiszone| sigfigs| snaplen | network |
//  +-------+------+------+--------+--------+---------+---------+
//  Record header (16 bytes): ts_sec, ts_usec, incl_len, orig_len; then incl_len bytes.
export const PCAP_MAGIC_USEC = 0xa1b2c3d4;
export const PCAP_HEADER_LEN = 24;
export const PCAP_RECORD_HEADER_LEN = 16;
export const LINKTYPE_ETHERNET = 1;
export const PCAP_SNAPLEN = 65535;

/** Appends frames to a pcap file with synchronous writes: each record is on disk when write returns. */
export class PcapWriter {
  private fd: number;
  private readonly rec = new Uint8Array(PCAP_RECORD_HEADER_LEN + PCAP_SNAPLEN);
  private readonly dv = new DataView(this.rec.buffer);
  records = 0;

  constructor(readonly path: string) {
    const h = new DataView(new ArrayBuffer(PCAP_HEADER_LEN));
    h.setUint32(0, PCAP_MAGIC_USEC, true);
    h.setUint16(4, 2, true);
    h.setUint16(6, 4, true);
    h.setInt32(8, 0, true);
    h.setUint32(12, 0, true);
    h.setUint32(16, PCAP_SNAPLEN, true);
    h.setUint32(20, LINKTYPE_ETHERNET, true);
    this.fd = openSync(path, "w");
    writeSync(this.fd, new Uint8Array(h.buffer));
  }

  /** Writes one frame stamped `nowUs` (microseconds since the epoch; default: now). */
  write(frame: Uint8Array, nowUs = Math.floor((performance.timeOrigin + performance.now()) * 1000)): void {
    if (this.fd < 0) return;
    const incl = Math.min(frame.length, PCAP_SNAPLEN);
    this.dv.setUint32(0, Math.floor(nowUs / 1e6), true);
    this.dv.setUint32(4, nowUs % 1e6, true);
    this.dv.setUint32(8, incl, true);
    this.dv.setUint32(12, frame.length, true);
    this.rec.set(frame.subarray(0, incl), PCAP_RECORD_HEADER_LEN);
    writeSync(this.fd, this.rec, 0, PCAP_RECORD_HEADER_LEN + incl);
    this.records++;
  }

  close(): void {
    if (this.fd < 0) return;
    closeSync(this.fd);
    this.fd = -1;
  }
}

export interface PcapRecord {
  /** Microseconds since the epoch. */
  tsUs: number;
  origLen: number;
  data: Uint8Array;
}

/** Parses a classic pcap file (either byte order, micro- or nanosecond magic). Never throws. */
export function parsePcap(bytes: Uint8Array): { ok: true; linktype: number; snaplen: number; records: PcapRecord[] } | { ok: false; error: string } {
  if (bytes.length < PCAP_HEADER_LEN) return { ok: false, error: `pcap: ${bytes.length} bytes < header ${PCAP_HEADER_LEN}` };
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const m = dv.getUint32(0, true);
  const le = m === PCAP_MAGIC_USEC || m === 0xa1b23c4d;
  const magic = dv.getUint32(0, le);
  if (magic !== PCAP_MAGIC_USEC && magic !== 0xa1b23c4d) return { ok: false, error: `pcap: bad magic 0x${m.toString(16)}` };
  const fracPerUs = magic === PCAP_MAGIC_USEC ? 1 : 1000;
  const snaplen = dv.getUint32(16, le);
  const linktype = dv.getUint32(20, le);
  const records: PcapRecord[] = [];
  let off = PCAP_HEADER_LEN;
  while (off < bytes.length) {
    if (off + PCAP_RECORD_HEADER_LEN > bytes.length) return { ok: false, error: `pcap: truncated record header at ${off}` };
    const incl = dv.getUint32(off + 8, le);
    const end = off + PCAP_RECORD_HEADER_LEN + incl;
    if (end > bytes.length) return { ok: false, error: `pcap: record at ${off} runs past the end` };
    records.push({
      tsUs: dv.getUint32(off, le) * 1e6 + Math.floor(dv.getUint32(off + 4, le) / fracPerUs),
      origLen: dv.getUint32(off + 12, le),
      data: bytes.slice(off + PCAP_RECORD_HEADER_LEN, end),
    });
    off = end;
  }
  return { ok: true, linktype, snaplen, records };
}

/** A Backend that records every frame received, and every frame sent that the inner backend took. */
export class PcapBackend implements Backend {
  readonly name: string;
  readonly writer: PcapWriter;

  constructor(
    readonly inner: Backend,
    path: string,
  ) {
    this.name = `pcap(${inner.name})`;
    this.writer = new PcapWriter(path);
  }

  get mac(): Uint8Array {
    return this.inner.mac;
  }
  get fd(): number {
    return this.inner.fd;
  }

  recv(max: number, onFrame: (frame: Uint8Array) => void): number {
    return this.inner.recv(max, (f) => {
      this.writer.write(f);
      onFrame(f);
    });
  }

  send(frame: Uint8Array): boolean {
    if (!this.inner.send(frame)) return false;
    this.writer.write(frame);
    return true;
  }

  stats(): BackendStats {
    return this.inner.stats();
  }

  close(): void {
    this.writer.close();
    this.inner.close();
  }
}
