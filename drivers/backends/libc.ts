// The libc calls the NIC backends need (open, ioctl, read, write, UDP/TCP sockets, poll, epoll, timerfd) through bun:ffi.
// All are used nonblocking from synchronous loops. The first dlopen takes the machine's dlopen lock.
import { FFIType, read as peek } from "bun:ffi";
import { libcLoader } from "../../lib/sys/ffi.ts";

const { i32, u32, u64, ptr } = FFIType;

// Linux numbers, the same on x86-64 and arm64 (asm-generic).
export const O_RDWR = 2;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;
export const AF_INET = 2;
export const SOCK_DGRAM = 2;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_SNDBUF = 7;
export const SO_RCVBUF = 8;
export const MSG_TRUNC = 0x20;
export const MSG_DONTWAIT = 0x40;
export const POLLIN = 1;
export const POLLOUT = 4;
// For hostfwd.ts: TCP listeners on loopback, epoll, timerfd.
export const SOCK_STREAM = 1;
export const SO_REUSEADDR = 2;
export const SO_LINGER = 13;
export const SHUT_WR = 1;
export const MSG_NOSIGNAL = 0x4000;
export const EPOLLIN = 0x001;
export const EPOLLOUT = 0x004;
export const EPOLLERR = 0x008;
export const EPOLLHUP = 0x010;
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLL_CTL_MOD = 3;
export const EPOLL_CLOEXEC = 0o2000000;
export const CLOCK_MONOTONIC = 1;
export const TFD_NONBLOCK = 0o4000;
export const TFD_CLOEXEC = 0o2000000;

const loadNetLibc = libcLoader({
  open: { args: [ptr, i32, i32], returns: i32 },
  close: { args: [i32], returns: i32 },
  // ssize_t returns are read as i32: frames are < 2^31 bytes and -1 stays -1 in the low half.
  read: { args: [i32, ptr, u64], returns: i32 },
  write: { args: [i32, ptr, u64], returns: i32 },
  ioctl: { args: [i32, u64, ptr], returns: i32 },
  socket: { args: [i32, i32, i32], returns: i32 },
  bind: { args: [i32, ptr, u32], returns: i32 },
  getsockname: { args: [i32, ptr, ptr], returns: i32 },
  setsockopt: { args: [i32, i32, i32, ptr, u32], returns: i32 },
  sendto: { args: [i32, ptr, u64, i32, ptr, u32], returns: i32 },
  recvfrom: { args: [i32, ptr, u64, i32, ptr, ptr], returns: i32 },
  poll: { args: [ptr, u64, i32], returns: i32 },
  listen: { args: [i32, i32], returns: i32 },
  accept4: { args: [i32, ptr, ptr, i32], returns: i32 },
  shutdown: { args: [i32, i32], returns: i32 },
  epoll_create1: { args: [i32], returns: i32 },
  epoll_ctl: { args: [i32, i32, i32, ptr], returns: i32 },
  epoll_wait: { args: [i32, ptr, i32, i32], returns: i32 },
  timerfd_create: { args: [i32, i32], returns: i32 },
  timerfd_settime: { args: [i32, i32, ptr, ptr], returns: i32 },
  __errno_location: { args: [], returns: ptr },
});

export type NetLibc = ReturnType<typeof loadNetLibc>;

/**
 * Loads libc once per thread (lib/sys/ffi.ts: libcLoader). `lock` is the machine's dlopen lock
 * (an Int32Array whose cell 0 is the lock); null where no other thread can be loading.
 */
export const netLibc: (lock?: Int32Array | null) => NetLibc = loadNetLibc;

/** errno of the last failed call on this thread; read it right after the call that failed. */
export function errno(): number {
  const p = netLibc().__errno_location();
  return p === null ? 0 : peek.i32(p as never, 0);
}

/** A NUL-terminated copy of `s` for char* arguments. */
export function cstr(s: string): Uint8Array {
  return new TextEncoder().encode(s + "\0");
}

/** Waits up to `timeoutMs` for `fd` to be readable (poll(2)); true if it is. -1 waits forever. */
export function pollIn(fd: number, timeoutMs: number): boolean {
  const pfd = new Int16Array(4); // struct pollfd { int fd; short events; short revents; }
  new Int32Array(pfd.buffer, 0, 1)[0] = fd;
  pfd[2] = POLLIN;
  const n = netLibc().poll(pfd, 1, timeoutMs);
  return n > 0 && (pfd[3]! & POLLIN) !== 0;
}
