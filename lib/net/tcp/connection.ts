// connection.ts — TcpConnection: the public face of one connection's state machine.
// Segments and time in (onSegment, onTick), segments and events out (poll, events).
// The work is done by connect.ts, rcv.ts, snd.ts, timer.ts and congestion.ts.

import type { TcpRepr } from "../types.ts";
import { openActive, openPassive, type PassiveOpen, synOutput } from "./connect.ts";
import { segmentArrives } from "./rcv.ts";
import { RecvBuffer, SendBuffer } from "./ring.ts";
import { seqSub } from "./seq.ts";
import { output } from "./snd.ts";
import {
  type Conn, type Endpoint, enterClosed, newTcb, type ResolvedConfig, resolveConfig, type Tcb,
  type TcpConfig, type TcpEvent, TcpState,
} from "./tcb.ts";
import { keepaliveHeard, nextDeadline, onTick, rstSegmentFor } from "./timer.ts";

export class TcpConnection {
  readonly cfg: ResolvedConfig;
  private readonly c: Conn;

  constructor(cfg: TcpConfig | ResolvedConfig = {}) {
    this.cfg = resolveConfig(cfg);
    this.c = {
      cfg: this.cfg,
      tcb: newTcb(this.cfg),
      snd: new SendBuffer(this.cfg.sendBufferSize),
      rcv: new RecvBuffer(this.cfg.recvBufferSize, this.cfg.maxOooRanges),
      out: [],
      ev: [],
    };
  }

  /** A connection created ESTABLISHED by a listener when a handshake completes. */
  static passive(cfg: TcpConfig | ResolvedConfig, now: number, p: PassiveOpen): TcpConnection {
    const conn = new TcpConnection(cfg);
    openPassive(conn.c, now, p);
    return conn;
  }

  /** The control block: plain data, every field documented in tcb.ts. Read it; don't write it. */
  get tcb(): Tcb {
    return this.c.tcb;
  }
  get state(): TcpState {
    return this.c.tcb.state;
  }
  get local(): Endpoint {
    return { addr: this.c.tcb.localAddr, port: this.c.tcb.localPort };
  }
  get remote(): Endpoint {
    return { addr: this.c.tcb.remoteAddr, port: this.c.tcb.remotePort };
  }

  /** Active open from CLOSED: the SYN goes out at the next poll. `iss` should come from an RFC 6528 generator (isnFor). */
  connect(now: number, local: Endpoint, remote: Endpoint, iss: number): void {
    if (this.c.tcb.state !== TcpState.CLOSED) throw new Error("connect: connection is not CLOSED");
    openActive(this.c, now, local, remote, iss);
  }

  /** Feed one incoming segment addressed to this connection. The machine copies what it keeps. */
  onSegment(now: number, seg: TcpRepr): void {
    segmentArrives(this.c, now, seg);
  }

  /** Run expired timers. Call when now >= nextDeadline(); harmless at any other time. */
  onTick(now: number): void {
    onTick(this.c, now);
  }

  /** The earliest time onTick has work, or -1 when no timer runs. */
  nextDeadline(): number {
    return nextDeadline(this.c.tcb);
  }

  /** Segments to transmit now, in order. The caller owns them (payloads are copies). */
  poll(now: number): TcpRepr[] {
    const t = this.c.tcb;
    if (t.state === TcpState.SYN_SENT || t.state === TcpState.SYN_RECEIVED) synOutput(this.c, now);
    else output(this.c, now);
    return this.c.out.splice(0);
  }

  /** Events since the last call, in order (see TcpEvent). */
  events(): TcpEvent[] {
    return this.c.ev.splice(0);
  }

  /**
   * Queue bytes for sending; returns how many were taken (limited by free buffer
   * space), 0 when the sending side is closed or the connection is not open.
   */
  send(bytes: Uint8Array): number {
    const t = this.c.tcb;
    if (t.finQueued || t.appClosed) return 0;
    switch (t.state) {
      case TcpState.SYN_SENT:
      case TcpState.SYN_RECEIVED:
      case TcpState.ESTABLISHED:
      case TcpState.CLOSE_WAIT:
        return this.c.snd.write(bytes);
      default:
        return 0;
    }
  }

  /** Whether send() would take bytes now. */
  get sendSpace(): number {
    const t = this.c.tcb;
    if (t.finQueued || t.appClosed) return 0;
    return t.state === TcpState.ESTABLISHED || t.state === TcpState.CLOSE_WAIT || t.state === TcpState.SYN_SENT || t.state === TcpState.SYN_RECEIVED
      ? this.c.snd.free
      : 0;
  }

  /** Bytes queued and not yet acknowledged. */
  get unackedBytes(): number {
    return this.c.snd.length;
  }

  /** Memory the connection's send and receive buffers hold (none in TIME-WAIT or CLOSED once drained). */
  get bufferBytes(): number {
    return this.c.snd.allocated + this.c.rcv.allocated;
  }

  /** In-order bytes waiting for recv(). */
  get readableBytes(): number {
    return this.c.rcv.length;
  }

  /** The peer's FIN arrived and every byte before it has been read: recv() returns nothing more, ever. */
  get eof(): boolean {
    const t = this.c.tcb;
    return t.rcvFinSeq >= 0 && seqSub(t.rcvNxt, t.rcvFinSeq) > 0 && this.c.rcv.length === 0;
  }

  /**
   * Read up to `max` in-order bytes (a new array, possibly empty). Opening the window
   * by a significant amount schedules a window update (receiver SWS avoidance, RFC
   * 9293 §3.8.6.2.2: at least min(buffer/2, MSS)).
   */
  recv(max: number = Infinity): Uint8Array {
    const t = this.c.tcb;
    if (t.appClosed) return new Uint8Array(0);
    const data = this.c.rcv.read(max);
    if (data.length > 0 && (t.state === TcpState.ESTABLISHED || t.state === TcpState.FIN_WAIT_1 || t.state === TcpState.FIN_WAIT_2)) {
      const edge = (t.rcvNxt + this.c.rcv.window) >>> 0;
      if (seqSub(edge, t.rcvAdv) >= Math.min(this.c.rcv.capacity >>> 1, t.rcvMss)) t.ackNow = true;
    }
    // The last bytes of a connection that is done: its buffer goes (TIME-WAIT lasts minutes).
    if (t.state === TcpState.TIME_WAIT || t.state === TcpState.CLOSED) this.c.rcv.release();
    return data;
  }

  /** Half-close: send a FIN after the queued data (RFC 9293 §3.10.4 CLOSE). Reading goes on. */
  shutdownWrite(): void {
    const t = this.c.tcb;
    if (t.finQueued) return;
    switch (t.state) {
      case TcpState.SYN_SENT:
      case TcpState.SYN_RECEIVED:
        t.finQueued = true; // sent once established
        return;
      case TcpState.ESTABLISHED:
        t.finQueued = true;
        t.state = TcpState.FIN_WAIT_1;
        return;
      case TcpState.CLOSE_WAIT:
        t.finQueued = true;
        t.state = TcpState.LAST_ACK;
        return;
    }
  }

  /**
   * Full close: no more reads or writes. Queued data is still delivered, then FIN. If
   * unread data is pending, or data arrives later, the connection is reset instead
   * (RFC 9293 §3.10.4, RFC 2525 §2.17). An orphan waits in FIN-WAIT-2 at most
   * finWait2TimeoutMs. In SYN-SENT the attempt is simply dropped.
   */
  close(): void {
    const t = this.c.tcb;
    if (t.state === TcpState.CLOSED) return;
    if (t.state === TcpState.SYN_SENT) {
      enterClosed(this.c);
      return;
    }
    if (this.c.rcv.length > 0) {
      this.abort();
      return;
    }
    t.appClosed = true;
    this.shutdownWrite();
    if (t.state === TcpState.FIN_WAIT_2 && t.finWait2Deadline < 0) t.finWait2Deadline = t.lastNow + this.cfg.finWait2TimeoutMs;
  }

  /** Abort: RST to the peer where the state calls for one, then CLOSED (RFC 9293 §3.10.5). */
  abort(): void {
    const t = this.c.tcb;
    switch (t.state) {
      case TcpState.SYN_RECEIVED:
      case TcpState.ESTABLISHED:
      case TcpState.FIN_WAIT_1:
      case TcpState.FIN_WAIT_2:
      case TcpState.CLOSE_WAIT:
        this.c.out.push(rstSegmentFor(t));
        break;
    }
    t.appClosed = true;
    enterClosed(this.c);
  }

  /** TCP_NODELAY: true sends small segments at once instead of waiting for ACKs (Nagle). */
  setNoDelay(on: boolean): void {
    this.c.tcb.noDelay = on;
  }

  /** SO_KEEPALIVE with optional TCP_KEEPIDLE / TCP_KEEPINTVL / TCP_KEEPCNT (ms, ms, count). */
  setKeepalive(on: boolean, idleMs?: number, intervalMs?: number, count?: number): void {
    const t = this.c.tcb;
    t.keepalive = on;
    if (idleMs !== undefined) t.keepIdleMs = Math.max(1, idleMs);
    if (intervalMs !== undefined) t.keepIntervalMs = Math.max(1, intervalMs);
    if (count !== undefined) t.keepCount = Math.max(1, count);
    keepaliveHeard(this.c, t.lastNow);
  }
}
