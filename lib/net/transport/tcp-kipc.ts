// TCP data by kernel message: the send, recv and accept calls of sockets made without
// an arena (libc/net.ts), forwarded by the syscall server. A call that cannot be
// answered at once waits on its socket (a blocking accept, recv or send) until the
// connection's events complete it, or its time limit fails it.
import { complete, fail, num, bytes as argBytes, type NetCall } from "../netcall.ts";
import { EAGAIN, EBADF, ECONNRESET, EINVAL, ENOTCONN, EPIPE, ErrnoError } from "../../sys/errno.ts";
import { output, pump } from "./tcp-conn.ts";
import { type DataPath, newSock, sockOf, type TcpSock, type TcpState } from "./tcp-state.ts";

/** Most bytes one recv returns (a kernel message holds at most 16 KiB). */
const MAX_IO = 8192;

/** Answers waiting receives in order: data, then EOF or the connection's error. */
function serveRecvs(s: TcpState, k: TcpSock): void {
  const c = k.conn;
  while (k.recvs.length > 0) {
    const w = k.recvs[0]!;
    const data = c ? c.recv(w.max) : new Uint8Array(0);
    if (data.length > 0) {
      k.recvs.shift();
      complete(s.proc, w.call, data);
      continue;
    }
    if (!c || c.eof) {
      k.recvs.shift();
      complete(s.proc, w.call, data); // end of stream
      continue;
    }
    if (k.error) {
      k.recvs.shift();
      fail(s.proc, w.call, k.error);
      continue;
    }
    break;
  }
}

/** Moves waiting sends into the connection as far as it has room; each completes when all its bytes are in. */
function serveSends(s: TcpState, k: TcpSock, now: number): void {
  const c = k.conn;
  if (!c) return;
  while (k.sends.length > 0) {
    const w = k.sends[0]!;
    w.off += c.send(w.data.subarray(w.off));
    if (w.off < w.data.length) break;
    k.sends.shift();
    complete(s.proc, w.call, w.data.length);
  }
  output(s, c, now);
}

/** Receives whose time limit passed fail with EAGAIN. */
function expireRecvs(s: TcpState, now: number): void {
  for (const k of s.timedRecvs) {
    while (k.recvs.length > 0 && k.recvs[0]!.deadline <= now) fail(s.proc, k.recvs.shift()!.call, EAGAIN, "receive timed out");
    if (!k.recvs.some((w) => w.deadline !== Number.POSITIVE_INFINITY)) s.timedRecvs.delete(k);
  }
}

/** Hands the next accepted connection to an accept call; false if none is ready. */
function takeAccept(s: TcpState, k: TcpSock, c: NetCall): boolean {
  const conn = k.listener!.accept();
  if (!conn) return false;
  const n = newSock(s, c.app);
  n.conn = conn;
  n.connected = true;
  n.laddr = conn.local.addr;
  s.socks.setPort(n, conn.local.port);
  n.raddr = conn.remote.addr;
  n.rport = conn.remote.port;
  s.byConn.set(conn, n);
  s.stats.accepted++;
  complete(s.proc, c, { sock: n.id, addr: n.raddr, port: n.rport });
  // Anything that arrived before accept (data, FIN) is waiting in the connection.
  pump(s, conn, performance.now());
  return true;
}

/** ACCEPT: a connection now, EAGAIN (nonblocking), or the call waits for one. */
export function acceptCall(s: TcpState, c: NetCall): void {
  const k = sockOf(s, c);
  if (!k.listener) throw new ErrnoError(EINVAL, "not listening");
  if (takeAccept(s, k, c)) return;
  if (c.args.nonblock === true) throw new ErrnoError(EAGAIN, "no pending connection");
  k.accepts.push(c);
}

/** SEND: what fits in the send buffer now; the rest waits (or EAGAIN / a short count when nonblocking). */
export function sendCall(s: TcpState, c: NetCall, now: number): void {
  const a = c.args;
  const k = sockOf(s, c);
  const data = argBytes(a, "data");
  if (!data) throw new ErrnoError(EINVAL, "no data");
  if (!k.conn) throw new ErrnoError(k.error || ENOTCONN, "not connected");
  if (k.error) throw new ErrnoError(k.error === ECONNRESET ? EPIPE : k.error, "connection failed");
  const n = k.sends.length > 0 ? 0 : k.conn.send(data);
  output(s, k.conn, now);
  if (n === data.length) return complete(s.proc, c, n);
  if (a.nonblock === true) {
    if (n > 0) return complete(s.proc, c, n);
    throw new ErrnoError(EAGAIN, "send buffer full");
  }
  k.sends.push({ call: c, data, off: n });
}

/** RECV: buffered bytes (or EOF) now; otherwise EAGAIN when nonblocking, else the call waits (up to timeoutMs). */
export function recvCall(s: TcpState, c: NetCall, now: number): void {
  const a = c.args;
  const k = sockOf(s, c);
  if (!k.conn) throw new ErrnoError(k.error || ENOTCONN, "not connected");
  const max = Math.max(1, Math.min(MAX_IO, num(a, "max", MAX_IO)));
  const t = num(a, "timeoutMs", -1);
  k.recvs.push({ call: c, max, deadline: t >= 0 ? now + t : Number.POSITIVE_INFINITY });
  if (t >= 0) s.timedRecvs.add(k);
  serveRecvs(s, k);
  output(s, k.conn, now); // a window update, if reading opened the window
  if (a.nonblock === true && k.recvs.length > 0 && k.recvs[k.recvs.length - 1]!.call === c) {
    k.recvs.pop();
    throw new ErrnoError(EAGAIN, "no data");
  }
}

/** The connection failed or ended: readers get what is buffered, then EOF or the error; writers the error (EPIPE). */
function failIo(s: TcpState, k: TcpSock): void {
  serveRecvs(s, k);
  for (const w of k.sends.splice(0)) fail(s.proc, w.call, k.error ? k.error : EPIPE);
}

/** A socket by message: its connection's events answer the calls waiting on it. */
export const KIPC_PATH: DataPath = {
  connected: () => {},
  readable: serveRecvs,
  writable: serveSends,
  failed: failIo,
  ended: failIo,
  accepted: (s, k) => {
    while (k.accepts.length > 0 && takeAccept(s, k, k.accepts[0]!)) k.accepts.shift();
  },
  // The socket is closing: its waiting calls fail with EBADF.
  closing: (s, k) => {
    for (const w of k.accepts.splice(0)) fail(s.proc, w, EBADF);
    for (const w of k.recvs.splice(0)) fail(s.proc, w.call, EBADF);
    for (const w of k.sends.splice(0)) fail(s.proc, w.call, EBADF);
  },
  tick: expireRecvs,
};
