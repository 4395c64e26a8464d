// table.ts — connection lookup by 4-tuple, listener lookup by local endpoint, and the
// demultiplexer that routes an incoming segment to its connection, its listener, or
// answers it with a RST (RFC 9293 §3.10.7.1).
//
// Keys are exact and computed, never scanned: an IPv4 endpoint (32-bit address,
// 16-bit port) packs into a 48-bit integer, which a JS number holds exactly; a
// 4-tuple is two of them (fourtuple.ts).

import type { TcpRepr } from "../types.ts";
import type { TcpConnection } from "./connection.ts";
import type { TcpListener } from "./listener.ts";
import { rstFor } from "./rcv.ts";
import { endpointKey, FourTupleMap } from "./fourtuple.ts";

export { endpointKey, FourTupleMap };

/** A segment to transmit and its IPv4 addresses. */
export interface Outgoing {
  src: number;
  dst: number;
  seg: TcpRepr;
}

/** What dispatch did with a segment. */
export interface DispatchResult {
  /** Replies made on the spot (listener SYN-ACKs, RSTs); a connection's own output comes from its poll(). */
  replies: Outgoing[];
  /** A connection the listener created (already added to the table). */
  accepted?: TcpConnection;
  /** The connection the segment went to, if any. */
  conn?: TcpConnection;
}

/** Every connection and listener of one TCP instance. */
export class TcpTable {
  readonly conns = new FourTupleMap<TcpConnection>();
  private readonly listeners = new Map<number, TcpListener>();

  get size(): number {
    return this.conns.size;
  }

  /** Add a connection under its 4-tuple; false if the 4-tuple is taken. */
  add(c: TcpConnection): boolean {
    const t = c.tcb;
    if (this.conns.get(t.localAddr, t.localPort, t.remoteAddr, t.remotePort)) return false;
    this.conns.set(t.localAddr, t.localPort, t.remoteAddr, t.remotePort, c);
    return true;
  }

  lookup(localAddr: number, localPort: number, remoteAddr: number, remotePort: number): TcpConnection | undefined {
    return this.conns.get(localAddr, localPort, remoteAddr, remotePort);
  }

  remove(c: TcpConnection): boolean {
    const t = c.tcb;
    if (this.conns.get(t.localAddr, t.localPort, t.remoteAddr, t.remotePort) !== c) return false;
    return this.conns.delete(t.localAddr, t.localPort, t.remoteAddr, t.remotePort);
  }

  /** Bind a listener to (addr, port); addr 0 is the wildcard. False if taken. */
  listen(addr: number, port: number, l: TcpListener): boolean {
    const k = endpointKey(addr, port);
    if (this.listeners.has(k)) return false;
    this.listeners.set(k, l);
    return true;
  }

  unlisten(addr: number, port: number): boolean {
    return this.listeners.delete(endpointKey(addr, port));
  }

  /** The listener for a local endpoint: an exact address first, then the wildcard. */
  listenerFor(addr: number, port: number): TcpListener | undefined {
    return this.listeners.get(endpointKey(addr, port)) ?? this.listeners.get(endpointKey(0, port));
  }

  *listenersAll(): IterableIterator<TcpListener> {
    yield* this.listeners.values();
  }

  /**
   * Route a segment that arrived from `src` to `dst`: to its connection, else to a
   * listener on the destination port, else answer with rstFor() (RFC 9293 §3.10.7.1).
   */
  dispatch(now: number, seg: TcpRepr, src: number, dst: number): DispatchResult {
    const conn = this.lookup(dst, seg.dstPort, src, seg.srcPort);
    if (conn) {
      conn.onSegment(now, seg);
      return { replies: [], conn };
    }
    const l = this.listenerFor(dst, seg.dstPort);
    if (l) {
      const r = l.onSegment(now, seg, dst, src);
      const replies = r.replies.map((s) => ({ src: dst, dst: src, seg: s }));
      if (r.accepted) {
        this.add(r.accepted);
        return { replies, accepted: r.accepted, conn: r.accepted };
      }
      return { replies };
    }
    const rst = rstFor(seg);
    return { replies: rst ? [{ src: dst, dst: src, seg: rst }] : [] };
  }
}
