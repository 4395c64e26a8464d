// The newts backend's control calls, answered locally but for two kinds of socket option:
// fcntl; setsockopt/getsockopt, where SO_SNDBUF/SO_RCVBUF and SOL_NEWTS NEWTS_TX_SLOTS/
// NEWTS_RX_SLOTS resize the socket's rings (a SOCK_RESIZE system call; EBUSY while data is
// in flight) and TCP_NODELAY and SO_KEEPALIVE go to tcp (SOCK_OPT, a system call, as on
// Linux), while other options are only recorded; getsockname (a system call for a datagram
// socket) and getpeername.
import { SYS } from "../../lib/ipc/calls.ts";
import { ERR, MAX_DATA, MAX_SLOTS, MIN_DATA, MIN_SLOTS } from "../../lib/sock/abi.ts";
import { EBADF, EINVAL, ENOTCONN, ErrnoError } from "../../lib/sys/errno.ts";
import { K } from "../counters.ts";
import {
  F_GETFD, F_GETFL, F_SETFD, F_SETFL, FD_CLOEXEC, IPPROTO_TCP, type Linger, NEWTS_RX_SLOTS, NEWTS_TX_SLOTS, O_NONBLOCK, O_RDWR,
  SO_ACCEPTCONN, SO_ERROR, SO_KEEPALIVE, SO_LINGER, SO_RCVBUF, SO_SNDBUF, SO_TYPE, SOCK_STREAM, type SockAddr, SOL_NEWTS, SOL_SOCKET,
  TCP_NODELAY,
} from "../api.ts";
import { SocketData } from "./data.ts";
import { attachSegments, type Fd, streamState } from "./fd.ts";

/** The power of two from lo up to hi that first reaches v. */
const pow2 = (v: number, lo: number, hi: number) => {
  let n = lo;
  while (n < v && n < hi) n *= 2;
  return n;
};

/** The ring geometry a setsockopt asks for (SO_SNDBUF/SO_RCVBUF: data bytes; SOL_NEWTS: slots), or null. */
function ringOption(level: number, name: number, v: number): Record<string, number> | null {
  if (level === SOL_SOCKET && name === SO_SNDBUF) return { txData: pow2(v, MIN_DATA, MAX_DATA) };
  if (level === SOL_SOCKET && name === SO_RCVBUF) return { rxData: pow2(v, MIN_DATA, MAX_DATA) };
  if (level === SOL_NEWTS && name === NEWTS_TX_SLOTS) return { txSlots: pow2(v, MIN_SLOTS, MAX_SLOTS) };
  if (level === SOL_NEWTS && name === NEWTS_RX_SLOTS) return { rxSlots: pow2(v, MIN_SLOTS, MAX_SLOTS) };
  return null;
}

/** SO_ERROR: a connect's result or a reset's errno, consumed (0 when none is pending). */
function soError(e: Fd): number {
  if (e.type !== SOCK_STREAM) return 0;
  const s = e.sock;
  if (!e.connecting && (s.readinessBits() & ERR) === 0) return 0;
  const er = s.takeError();
  streamState(e);
  if (er === 0) {
    e.connecting = false;
    e.connected = true;
  }
  return er > 0 ? er : 0;
}

/** fcntl, setsockopt/getsockopt, getsockname and getpeername. */
export class SocketControl extends SocketData {
  fcntl(fd: number, cmd: number, arg = 0): number {
    const k = K.fcntl;
    this.enter(k);
    const ep = this.eps.get(fd);
    const e = ep ? null : this.entry(k, "fcntl", fd);
    switch (cmd) {
      case F_GETFL:
        this.ok(k);
        return O_RDWR | (e?.nonblock ? O_NONBLOCK : 0);
      case F_SETFL:
        this.ok(k);
        if (e) e.nonblock = (arg & O_NONBLOCK) !== 0;
        return 0;
      case F_GETFD:
        this.ok(k);
        return (e ? e.cloexec : ep!.cloexec) ? FD_CLOEXEC : 0;
      case F_SETFD:
        this.ok(k);
        if (e) e.cloexec = (arg & FD_CLOEXEC) !== 0;
        else ep!.cloexec = (arg & FD_CLOEXEC) !== 0;
        return 0;
      default:
        this.raise(this.deny(k, EINVAL), "fcntl", fd);
    }
  }

  setsockopt(fd: number, level: number, name: number, value: number | Linger): void {
    const k = K.setsockopt;
    this.enter(k);
    const e = this.entry(k, "setsockopt", fd);
    if (level === SOL_SOCKET && name === SO_LINGER) {
      if (typeof value !== "object" || value === null) this.raise(this.deny(k, EINVAL), "setsockopt", fd);
      e.linger = { onoff: !!value.onoff, linger: Math.max(0, Math.trunc(value.linger)) };
      this.ok(k);
      return;
    }
    if (typeof value !== "number") this.raise(this.deny(k, EINVAL), "setsockopt", fd);
    const ring = ringOption(level, name, value);
    if (ring) {
      // the socket gets rings of the new size (the stack's system call; EBUSY with data in flight)
      if (!Number.isFinite(value) || value <= 0) this.raise(this.deny(k, EINVAL), "setsockopt", fd);
      const r = this.sys(k, "setsockopt", fd, SYS.SOCK_RESIZE, { server: e.ar.name, slot: e.slot, ...ring }) as { segments?: unknown };
      attachSegments(this, e.ar, r?.segments);
      const sock = e.ar.arena.open(e.slot, e.sock.gen);
      if (!sock) {
        this.counters.error(k);
        throw new ErrnoError(EBADF, `setsockopt(${fd}): the resized socket buffer is gone`);
      }
      e.sock = sock;
      return;
    }
    if (e.type === SOCK_STREAM && ((level === IPPROTO_TCP && name === TCP_NODELAY) || (level === SOL_SOCKET && name === SO_KEEPALIVE))) {
      // the connection's own behaviour: the stack is told (a system call, as on Linux)
      const on = value !== 0;
      this.sys(k, "setsockopt", fd, SYS.SOCK_OPT, { server: e.ar.name, slot: e.slot, ...(name === TCP_NODELAY && level === IPPROTO_TCP ? { nodelay: on } : { keepalive: on }) });
    } else this.ok(k);
    e.opts.set(`${level}:${name}`, value);
  }

  getsockopt(fd: number, level: typeof SOL_SOCKET, name: typeof SO_LINGER): Linger;
  getsockopt(fd: number, level: number, name: number): number;
  getsockopt(fd: number, level: number, name: number): number | Linger {
    const k = K.getsockopt;
    this.enter(k);
    const e = this.entry(k, "getsockopt", fd);
    this.ok(k);
    if (level === SOL_SOCKET) {
      switch (name) {
        case SO_LINGER:
          return { ...e.linger };
        case SO_TYPE:
          return e.type;
        case SO_ACCEPTCONN:
          return e.listening ? 1 : 0;
        case SO_ERROR:
          return soError(e);
        case SO_SNDBUF:
          return e.sock.geometry().txData;
        case SO_RCVBUF:
          return e.sock.geometry().rxData;
      }
    }
    if (level === SOL_NEWTS && name === NEWTS_TX_SLOTS) return e.sock.geometry().txSlots;
    if (level === SOL_NEWTS && name === NEWTS_RX_SLOTS) return e.sock.geometry().rxSlots;
    return e.opts.get(`${level}:${name}`) ?? 0;
  }

  getsockname(fd: number): SockAddr {
    const k = K.getsockname;
    this.enter(k);
    const e = this.entry(k, "getsockname", fd);
    if (e.type === SOCK_STREAM) {
      this.ok(k);
      const [addr, port] = e.sock.localAddr();
      return { addr, port };
    }
    const r = this.sys(k, "getsockname", fd, SYS.GETSOCKNAME, { fd: e.sysfd }) as SockAddr;
    return { addr: r.addr >>> 0, port: r.port };
  }

  getpeername(fd: number): SockAddr {
    const k = K.getpeername;
    this.enter(k);
    const e = this.entry(k, "getpeername", fd);
    if (e.type === SOCK_STREAM) {
      streamState(e);
      if (!e.connected) this.raise(this.deny(k, ENOTCONN), "getpeername", fd);
      this.ok(k);
      const [addr, port] = e.sock.peerAddr();
      return { addr, port };
    }
    if (!e.peer) this.raise(this.deny(k, ENOTCONN), "getpeername", fd);
    this.ok(k);
    return { ...e.peer };
  }
}
