// Sockets whose data moves in kernel messages: every call, sends and receives
// included, traps to the kernel and goes through the syscall server to tcp or udp
// (lib/net/transport/tcp-kipc.ts, udp-kipc.ts hold their waiters). Only nc uses it:
// these sockets are the ones that survive a restart of tcp or udp today (their
// table is in the servers' stores), which arena sockets do not yet. Apps use the
// socket API (libc/api.ts), whose syscall backend is the paper's baseline.
// Errors are thrown as ErrnoError with Linux errno values.
import { AF_INET, SOCK_DGRAM, SOCK_STREAM, SYS } from "../lib/ipc/calls.ts";
import { syscall } from "./unistd.ts";
import { formatIpv4Addr, parseIpv4Addr } from "../lib/net/addr.ts";
import { EINVAL, ErrnoError } from "../lib/sys/errno.ts";

export { AF_INET, SOCK_DGRAM, SOCK_STREAM };

export interface SockAddr {
  addr: number;
  port: number;
}

/** "10.0.2.2" -> u32; throws EINVAL on bad text. */
export function inetAddr(text: string): number {
  const a = parseIpv4Addr(text);
  if (a === null) throw new ErrnoError(EINVAL, `bad IPv4 address '${text}'`);
  return a;
}

export function inetNtoa(a: number): string {
  return formatIpv4Addr(a);
}

// Socket calls are not retried blindly: only those without side effects are idempotent.
export const socket = (domain: number, type: number): number => syscall(SYS.SOCKET, { domain, type }, false) as number;
/** bind by system call; like most servers (nc among them), with SO_REUSEADDR. */
export const bind = (fd: number, addr: number, port: number): void => void syscall(SYS.BIND, { fd, addr, port, reuse: true }, false);
export const listen = (fd: number, backlog = 128): void => void syscall(SYS.LISTEN, { fd, backlog }, false);
export const accept = (fd: number, nonblock = false): { fd: number } & SockAddr =>
  syscall(SYS.ACCEPT, { fd, nonblock }, false) as { fd: number } & SockAddr;
export const connect = (fd: number, addr: number, port: number, nonblock = false): void =>
  void syscall(SYS.CONNECT, { fd, addr, port, nonblock }, false);
export const send = (fd: number, data: Uint8Array, nonblock = false): number => syscall(SYS.SEND, { fd, data, nonblock }, false) as number;
/** Bytes received; an empty array means end of stream. */
export const recv = (fd: number, max: number, nonblock = false, timeoutMs?: number): Uint8Array =>
  toBytes(syscall(SYS.RECV, { fd, max, nonblock, timeoutMs }, false));
export const sendto = (fd: number, data: Uint8Array, addr: number, port: number): number =>
  syscall(SYS.SENDTO, { fd, data, addr, port }, false) as number;
export function recvfrom(fd: number, max: number, nonblock = false, timeoutMs?: number): { data: Uint8Array } & SockAddr {
  const r = syscall(SYS.RECVFROM, { fd, max, nonblock, timeoutMs }, false) as { data: unknown } & SockAddr;
  return { data: toBytes(r.data), addr: r.addr, port: r.port };
}
export const shutdown = (fd: number, how: number): void => void syscall(SYS.SHUTDOWN, { fd, how }, false);
export const close = (fd: number): void => void syscall(SYS.CLOSE, { fd }, false);
export const getsockname = (fd: number): SockAddr => syscall(SYS.GETSOCKNAME, { fd }) as SockAddr;
export const getpeername = (fd: number): SockAddr => syscall(SYS.GETPEERNAME, { fd }) as SockAddr;

/** Writes all of data (send may take part of it). */
export function sendAll(fd: number, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) off += send(fd, data.subarray(off, off + 8192));
}

function toBytes(v: unknown): Uint8Array {
  if (v instanceof Uint8Array) return v;
  return new Uint8Array(0);
}
