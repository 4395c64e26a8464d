// UDP data by kernel message: send, sendto, recv and recvfrom of sockets made
// without an arena (libc/net.ts), forwarded by the syscall server. Arriving
// datagrams queue on the socket (up to RCVBUF bytes) or complete a waiting
// receive; a receive with a time limit fails with ETIMEDOUT when it passes.
import { complete, fail, num, bytes as argBytes, type NetCall } from "../netcall.ts";
import { SYS } from "../../ipc/calls.ts";
import { EAGAIN, EDESTADDRREQ, EINVAL, EMSGSIZE, ENOBUFS, ErrnoError, ETIMEDOUT } from "../../sys/errno.ts";
import { IpProtocol } from "../ipv4.ts";
import type { Packet } from "../port.ts";
import { downTag, HEADROOM } from "../stackproto.ts";
import { emitUdp, UDP_HEADER_LEN } from "../udp.ts";
import { bindPort, type Dgram, sockOf, type UdpSock, type UdpState } from "./udp-state.ts";

/** Most bytes of datagrams queued on a socket for receives by message. */
export const RCVBUF = 212_992;
/** The largest UDP payload over IPv4. */
export const MAX_DGRAM = 65_507;

/** Sends one datagram from k to dst:dport (binding an ephemeral port first if needed). */
function sendDgram(s: UdpState, k: UdpSock, data: Uint8Array, dst: number, dport: number): number {
  if (data.length > MAX_DGRAM) throw new ErrnoError(EMSGSIZE, `datagram of ${data.length} bytes`);
  if (!(dport > 0 && dport < 65536)) throw new ErrnoError(EINVAL, "bad destination port");
  if (k.lport === 0) bindPort(s, k, 0, 0);
  const src = k.laddr !== 0 ? k.laddr : s.links.sourceFor(dst);
  const ip = s.links.port("ip");
  const d = s.pool.alloc(UDP_HEADER_LEN + data.length, HEADROOM);
  if (!d || !ip) throw new ErrnoError(ENOBUFS, "no buffer for the datagram");
  const buf = s.pool.view(d)!;
  emitUdp({ srcPort: k.lport, dstPort: dport, payload: data }, buf, src, dst);
  const p: Packet = { ...d, tag: downTag(IpProtocol.UDP), a: dst >>> 0, b: src >>> 0 };
  if (!ip.send(p)) {
    s.pool.release(d);
    throw new ErrnoError(ENOBUFS, "ip is not keeping up");
  }
  ip.flush();
  s.stats.tx++;
  return data.length;
}

/** SEND (to the connected peer) and SENDTO. */
export function sendCall(s: UdpState, c: NetCall): void {
  const a = c.args;
  const k = sockOf(s, c);
  const data = argBytes(a, "data");
  if (!data) throw new ErrnoError(EINVAL, "no data");
  const dst = c.op === SYS.SENDTO ? num(a, "addr", 0) >>> 0 : k.raddr;
  const port = c.op === SYS.SENDTO ? num(a, "port", 0) : k.rport;
  if (c.op === SYS.SEND && k.rport === 0) throw new ErrnoError(EDESTADDRREQ, "not connected");
  complete(s.proc, c, sendDgram(s, k, data, dst, port));
}

/** The answer to a receive: the bytes (RECV), or the bytes and their source (RECVFROM). */
function reply(c: NetCall, d: Dgram, max: number): unknown {
  const data = d.data.length > max ? d.data.subarray(0, max) : d.data;
  return c.op === SYS.RECV ? data : { data, addr: d.addr, port: d.port };
}

/** RECV and RECVFROM: a queued datagram now; otherwise EAGAIN when nonblocking, else the call waits (up to timeoutMs). */
export function recvCall(s: UdpState, c: NetCall): void {
  const a = c.args;
  const k = sockOf(s, c);
  if (k.fast) throw new ErrnoError(EINVAL, "an arena socket is read from its ring");
  const max = num(a, "max", 65536);
  const d = k.rxq.shift();
  if (d) {
    k.rxBytes -= d.data.length;
    return complete(s.proc, c, reply(c, d, max));
  }
  if (a.nonblock === true) throw new ErrnoError(EAGAIN, "no datagram");
  const t = num(a, "timeoutMs", -1);
  k.waiters.push({ call: c, max, deadline: t >= 0 ? performance.now() + t : Number.POSITIVE_INFINITY });
}

/** A datagram for k (dropped and counted past RCVBUF): to its first waiting receive, else into its queue. */
export function deliver(s: UdpState, k: UdpSock, payload: Uint8Array, addr: number, port: number): void {
  if (k.rxBytes + payload.length > RCVBUF) {
    s.stats.rcvbufFull++;
    return;
  }
  const d: Dgram = { data: payload.slice(), addr, port };
  const w = k.waiters.shift();
  if (w) return complete(s.proc, w.call, reply(w.call, d, w.max));
  k.rxq.push(d);
  k.rxBytes += d.data.length;
}

/** An ICMP error for k: its first waiting receive fails with it. */
export function deliverError(s: UdpState, k: UdpSock, errno: number): void {
  const w = k.waiters.shift();
  if (w) fail(s.proc, w.call, errno, "ICMP error");
}

/** Receives whose time limit passed fail with ETIMEDOUT; true if any did. */
export function expireWaiters(s: UdpState, now: number): boolean {
  let did = false;
  for (const k of s.socks.values()) {
    while (k.waiters.length > 0 && k.waiters[0]!.deadline <= now) {
      fail(s.proc, k.waiters.shift()!.call, ETIMEDOUT, "receive timed out");
      did = true;
    }
  }
  return did;
}
