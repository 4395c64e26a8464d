// errno values with their Linux numbers, so the newts and Linux backends agree.
export const EPERM = 1;
export const ENOENT = 2;
export const ESRCH = 3;
export const EINTR = 4;
export const EIO = 5;
export const EBADF = 9;
export const EAGAIN = 11;
export const ENOMEM = 12;
export const EFAULT = 14;
export const EBUSY = 16;
export const EEXIST = 17;
export const EINVAL = 22;
export const ENOSPC = 28;
export const EPIPE = 32;
export const ERANGE = 34;
export const ENOSYS = 38;
export const EBADMSG = 74;
export const EMSGSIZE = 90;
export const ENOTSOCK = 88;
export const EADDRINUSE = 98;
export const ECONNRESET = 104;
export const ETIMEDOUT = 110;
export const ECONNREFUSED = 111;
export const EINPROGRESS = 115;
export const EALREADY = 114;
export const EISCONN = 106;
export const ENOTCONN = 107;
export const EDESTADDRREQ = 89;
export const EPROTONOSUPPORT = 93;
export const EAFNOSUPPORT = 97;
export const EADDRNOTAVAIL = 99;
export const ENETUNREACH = 101;
export const EHOSTUNREACH = 113;
export const EOPNOTSUPP = 95;
export const EMFILE = 24;
export const EACCES = 13;
export const ENOBUFS = 105;
export const ENFILE = 23;
export const ECONNABORTED = 103;

const NAMES: Record<number, string> = {
  [EPERM]: "EPERM", [ENOENT]: "ENOENT", [ESRCH]: "ESRCH", [EINTR]: "EINTR", [EIO]: "EIO",
  [EBADF]: "EBADF", [EAGAIN]: "EAGAIN", [ENOMEM]: "ENOMEM", [EFAULT]: "EFAULT", [EBUSY]: "EBUSY",
  [EEXIST]: "EEXIST", [EINVAL]: "EINVAL", [ENOSPC]: "ENOSPC", [EPIPE]: "EPIPE", [ERANGE]: "ERANGE",
  [ENOSYS]: "ENOSYS", [EBADMSG]: "EBADMSG", [EMSGSIZE]: "EMSGSIZE", [ENOTSOCK]: "ENOTSOCK",
  [EADDRINUSE]: "EADDRINUSE", [ECONNRESET]: "ECONNRESET", [ETIMEDOUT]: "ETIMEDOUT",
  [ECONNREFUSED]: "ECONNREFUSED", [EINPROGRESS]: "EINPROGRESS", [EALREADY]: "EALREADY", [EISCONN]: "EISCONN",
  [ENOTCONN]: "ENOTCONN", [EDESTADDRREQ]: "EDESTADDRREQ", [EPROTONOSUPPORT]: "EPROTONOSUPPORT",
  [EAFNOSUPPORT]: "EAFNOSUPPORT", [EADDRNOTAVAIL]: "EADDRNOTAVAIL", [ENETUNREACH]: "ENETUNREACH",
  [EHOSTUNREACH]: "EHOSTUNREACH", [EOPNOTSUPP]: "EOPNOTSUPP", [EMFILE]: "EMFILE", [EACCES]: "EACCES", [ENOBUFS]: "ENOBUFS",
};

export function errnoName(e: number): string {
  return NAMES[e] ?? `E${e}`;
}

/** An error carrying a Linux errno, thrown by libc calls and IPC primitives. */
export class ErrnoError extends Error {
  readonly errno: number;
  constructor(errno: number, what: string) {
    super(`${what}: ${errnoName(errno)}`);
    this.errno = errno;
    this.name = "ErrnoError";
  }
}
