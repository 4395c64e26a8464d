// libc's ICMP echo: one echo request through the syscall server to ip, answered by
// the echo reply (or ETIMEDOUT). Not a socket: newts has no raw sockets, and ping
// is the one thing apps need ICMP for.
import { SYS } from "../lib/ipc/calls.ts";
import { syscall } from "./unistd.ts";

/** An echo reply: round-trip time, the reply's TTL and its payload bytes. */
export interface EchoReply {
  rttMs: number;
  ttl: number;
  bytes: number;
}

/** One ICMP echo to dst (u32) with `size` payload bytes; throws ETIMEDOUT when no reply comes in timeoutMs. */
export function ping(dst: number, seq: number, size = 56, timeoutMs = 1000): EchoReply {
  return syscall(SYS.PING, { dst, seq, size, timeoutMs }, false) as EchoReply;
}
