// The tcp server's connections: segments out (built in tcp's pool, headroom left
// for ip) and in (parsed in place in the driver's pool), the timers, and what a
// connection's events mean for its socket, whichever way its data travels (its
// DataPath: arena rings, tcp-rings.ts; kernel messages, tcp-kipc.ts).
import { complete, fail } from "../netcall.ts";
import { EBADF, ECONNREFUSED, ECONNRESET, ENOTCONN, ETIMEDOUT } from "../../sys/errno.ts";
import { IpProtocol } from "../ipv4.ts";
import type { Packet } from "../port.ts";
import { downTag, HEADROOM } from "../stackproto.ts";
import { emitTcp, parseTcp, tcpBufferLen } from "../tcp-wire.ts";
import { isnFor, TcpConnection, type Outgoing } from "../tcp/index.ts";
import type { TcpRepr } from "../types.ts";
import { ST_CONNECTING } from "../../sock/abi.ts";
import { applyOpts, ephemeral, forget, pathOf, type TcpSock, type TcpState } from "./tcp-state.ts";

function transmit(s: TcpState, src: number, dst: number, seg: TcpRepr): void {
  const ip = s.links.port("ip");
  const len = tcpBufferLen(seg);
  const d = ip ? s.pool.alloc(len, HEADROOM) : null;
  if (!d || !ip) {
    s.stats.txDropped++; // TCP retransmits what was lost
    return;
  }
  emitTcp(seg, s.pool.view(d)!, src, dst);
  const p: Packet = { ...d, tag: downTag(IpProtocol.TCP), a: dst >>> 0, b: src >>> 0 };
  if (!ip.send(p)) {
    s.stats.txDropped++;
    s.pool.release(d);
    return;
  }
  s.stats.txSegments++;
}

function transmitAll(s: TcpState, out: Outgoing[]): void {
  for (const o of out) transmit(s, o.src, o.dst, o.seg);
}

/** Queues a connection's next timer unless an earlier one is queued already. */
function schedule(s: TcpState, c: TcpConnection): void {
  const d = c.nextDeadline();
  if (d < 0) return;
  const at = s.scheduled.get(c);
  if (at !== undefined && at <= d) return;
  s.scheduled.set(c, d);
  s.timers.push(d, c);
}

/**
 * Polls the connection, transmits the segments it produced, and queues its next
 * timer (a send may have started the retransmission timer). Every path that hands
 * a connection data, window or a close ends here.
 */
export function output(s: TcpState, c: TcpConnection, now: number): void {
  for (const seg of c.poll(now)) transmit(s, c.local.addr, c.remote.addr, seg);
  schedule(s, c);
}

/** Sends what a connection has to send and acts on its events. */
export function pump(s: TcpState, c: TcpConnection, now: number): void {
  output(s, c, now);
  const k = s.byConn.get(c);
  for (const ev of c.events()) {
    if (!k) {
      if (ev === "closed") {
        s.table.remove(c);
        s.scheduled.delete(c);
      }
      continue;
    }
    // Calls by message may wait on any socket; a fast socket's rings are its own.
    const { fast, kipc } = s.paths;
    switch (ev) {
      case "connected":
        k.connected = true;
        if (k.connecting) {
          complete(s.proc, k.connecting, 0);
          k.connecting = null;
        }
        if (k.fast) fast.connected(s, k);
        break;
      case "readable":
      case "peer-closed":
        pathOf(s, k).readable(s, k);
        break;
      case "writable":
        pathOf(s, k).writable(s, k, now);
        break;
      case "reset":
        s.stats.resets++;
        k.error = k.connected ? ECONNRESET : ECONNREFUSED;
        if (k.fast) fast.failed(s, k);
        failConnect(s, k);
        kipc.failed(s, k);
        break;
      case "timed-out":
        k.error = ETIMEDOUT;
        if (k.fast) fast.failed(s, k);
        failConnect(s, k);
        kipc.failed(s, k);
        break;
      case "closed":
        s.table.remove(c);
        s.byConn.delete(c);
        s.scheduled.delete(c);
        if (!k.error && !k.closed) k.error = k.connected ? 0 : ECONNREFUSED;
        if (k.fast) fast.ended(s, k);
        failConnect(s, k);
        kipc.ended(s, k);
        if (k.closed) forget(s, k);
        break;
    }
  }
}

/** The connection failed or ended: a blocking connect by system call learns how. */
function failConnect(s: TcpState, k: TcpSock): void {
  if (k.connecting) {
    fail(s.proc, k.connecting, k.error || ENOTCONN);
    k.connecting = null;
  }
}

/** Opens k's connection to raddr:rport (binding an ephemeral port first if needed); the SYN goes at the next pump. */
export function startConnect(s: TcpState, k: TcpSock, raddr: number, rport: number, now: number): TcpConnection {
  const laddr = k.laddr !== 0 ? k.laddr : s.links.sourceFor(raddr);
  if (k.lport === 0) s.socks.setPort(k, ephemeral(s));
  k.laddr = laddr;
  k.raddr = raddr;
  k.rport = rport;
  const conn = new TcpConnection({});
  conn.connect(now, { addr: laddr, port: k.lport }, { addr: raddr, port: rport }, isnFor(s.secret, now, laddr, k.lport, raddr, rport));
  applyOpts(k, conn);
  s.table.add(conn);
  k.conn = conn;
  s.byConn.set(conn, k);
  s.socks.dirty = true;
  if (k.fast) {
    k.fast.sk.setState(ST_CONNECTING);
    k.fast.sk.setAddrs(k.laddr, k.lport, raddr, rport);
    k.fast.sk.setReadiness(0); // writable once connected
  }
  return conn;
}

/** Aborts a connection nobody will read (a listener's queue, a dropped child) and sends its RST. */
export function abortConn(s: TcpState, c: TcpConnection, now: number): void {
  c.abort();
  pump(s, c, now);
}

/** Closes the socket: calls waiting on it get EBADF; a listener's queue is reset; a connection closes (FIN, TIME_WAIT). */
export function closeSock(s: TcpState, k: TcpSock, now: number): void {
  k.closed = true;
  s.paths.kipc.closing(s, k, now);
  if (k.connecting) fail(s.proc, k.connecting, EBADF);
  k.connecting = null;
  if (k.fast) s.paths.fast.closing(s, k, now);
  if (k.listener) {
    s.table.unlisten(k.laddr, k.lport);
    s.byListener.delete(k.listener);
    for (let c = k.listener.accept(); c; c = k.listener.accept()) abortConn(s, c, now);
    forget(s, k);
    return;
  }
  if (k.conn) {
    // The connection lives on (FIN, TIME_WAIT) until its "closed" event.
    k.conn.close();
    pump(s, k.conn, now);
  } else forget(s, k);
}

/** A segment from ip: to its connection, or to a listener (a fast one premaps the new connection, a waiting accept by message takes it). */
export function onSegment(s: TcpState, p: Packet, bytes: Uint8Array, now: number): void {
  const ihl = (p.tag >>> 8) & 0xff;
  const src = p.a >>> 0;
  const dst = p.b >>> 0;
  const r = parseTcp(bytes.subarray(ihl), src, dst);
  if (!r.ok) {
    s.stats.badSegments++;
    return;
  }
  s.stats.rxSegments++;
  const listener = s.table.lookup(dst, r.value.dstPort, src, r.value.srcPort) ? undefined : s.table.listenerFor(dst, r.value.dstPort);
  const res = s.table.dispatch(now, r.value, src, dst);
  transmitAll(s, res.replies);
  if (res.conn) pump(s, res.conn, now);
  if (res.accepted && listener) {
    const k = s.byListener.get(listener);
    if (k?.fast) s.paths.fast.accepted(s, k, now);
    if (k) s.paths.kipc.accepted(s, k, now);
  }
}

/** Every 5 ms: the paths' ticks (fast listeners' premaps; timed receives), SYN-ACK retransmissions, the connections whose timer is due. */
export function tick(s: TcpState, now: number): void {
  s.paths.fast.tick(s, now);
  for (const l of s.table.listenersAll()) {
    if (l.nextDeadline() >= 0 && l.nextDeadline() <= now) transmitAll(s, l.onTick(now).map((o) => ({ src: o.src, dst: o.dst, seg: o.seg })));
  }
  // Only the connections whose timer is due: no scan of the table.
  while (s.timers.peekKey() <= now) {
    const c = s.timers.pop()!;
    if (s.scheduled.get(c) === undefined) continue; // closed since
    s.scheduled.delete(c);
    const d = c.nextDeadline();
    if (d >= 0 && d <= now) {
      c.onTick(now);
      pump(s, c, now);
    } else schedule(s, c); // moved later: queue it again
  }
  s.paths.kipc.tick(s, now);
}
