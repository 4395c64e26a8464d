// libc through bun:ffi: the one loader (libcLoader) every user of libc goes through,
// with its own symbol table, and the few functions the process runtime needs: thread
// id, CPU affinity, sched_yield, eventfd and poll. The first dlopen of libc is
// serialised across workers with a spin lock in a machine-wide SAB (concurrent first
// dlopen has crashed Bun).
import { dlopen, FFIType, type FFIFunction, type Library } from "bun:ffi";

/**
 * A loader of libc with the symbol table `symbols`: the returned function dlopens it on
 * its first call in a thread and returns the same symbols after that. `lock` is the
 * machine's dlopen lock (an Int32Array over a machine-wide SAB, cell 0 = the lock), taken
 * around that first dlopen; null where no other thread can be loading (the main thread).
 */
export function libcLoader<Fns extends Record<string, FFIFunction>>(symbols: Fns): (lock?: Int32Array | null) => Library<Fns>["symbols"] {
  let lib: Library<Fns>["symbols"] | null = null;
  return (lock = null) => {
    if (lib) return lib;
    if (lock) {
      for (let i = 0; Atomics.compareExchange(lock, 0, 0, 1) !== 0; i++) Atomics.wait(lock, 0, 1, 5);
    }
    try {
      lib = dlopen("libc.so.6", symbols).symbols;
    } finally {
      if (lock) {
        Atomics.store(lock, 0, 0);
        Atomics.notify(lock, 0, 1);
      }
    }
    return lib;
  };
}

const SYS_gettid = 186; // x86-64
const SYS_gettid_arm64 = 178;

const openLibc = libcLoader({
  syscall: { args: [FFIType.i64], returns: FFIType.i64 },
  sched_setaffinity: { args: [FFIType.i32, FFIType.u64, FFIType.ptr], returns: FFIType.i32 },
  sched_getaffinity: { args: [FFIType.i32, FFIType.u64, FFIType.ptr], returns: FFIType.i32 },
  sched_yield: { args: [], returns: FFIType.i32 },
  eventfd: { args: [FFIType.u32, FFIType.i32], returns: FFIType.i32 },
  write: { args: [FFIType.i32, FFIType.ptr, FFIType.u64], returns: FFIType.i32 },
  read: { args: [FFIType.i32, FFIType.ptr, FFIType.u64], returns: FFIType.i32 },
  poll: { args: [FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i32 },
});

type Libc = ReturnType<typeof openLibc>;

let libc: Libc | null = null;

/**
 * Loads libc once per thread. `lock` is an Int32Array over a machine-wide SAB
 * (cell 0 = the lock); pass null on the main thread.
 */
export function loadLibc(lock: Int32Array | null): Libc {
  return (libc ??= openLibc(lock));
}

function lib(): Libc {
  if (!libc) throw new Error("libc not loaded: call loadLibc first");
  return libc;
}

export function gettid(): number {
  return Number(lib().syscall(process.arch === "arm64" ? SYS_gettid_arm64 : SYS_gettid));
}

/** The calling thread's allowed CPUs. */
export function getAffinity(): number[] {
  const mask = new BigUint64Array(16);
  if (lib().sched_getaffinity(0, 128, mask) !== 0) return [];
  const cpus: number[] = [];
  for (let w = 0; w < 16; w++) {
    for (let b = 0n; b < 64n; b++) if ((mask[w]! >> b) & 1n) cpus.push(w * 64 + Number(b));
  }
  return cpus;
}

/** Pins the calling thread to `cpus` and returns the set read back from the kernel. */
export function pinThread(cpus: number[]): number[] {
  const mask = new BigUint64Array(16);
  for (const c of cpus) mask[c >> 6]! |= 1n << BigInt(c & 63);
  const rc = lib().sched_setaffinity(0, 128, mask);
  if (rc !== 0) return getAffinity();
  return getAffinity();
}

export function schedYield(): void {
  lib().sched_yield();
}

const EFD_NONBLOCK = 0o4000;
const EFD_CLOEXEC = 0o2000000;
const POLLIN = 1;
const one = new BigUint64Array([1n]);
const eight = new BigUint64Array(1);

/** A nonblocking eventfd (a doorbell a process can wait on together with a device fd). */
export function eventfdCreate(): number {
  return lib().eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

/** Makes an eventfd readable (any thread may: fds are shared by the whole process). */
export function eventfdSignal(fd: number): void {
  lib().write(fd, one, 8);
}

/** Resets an eventfd to not readable. */
export function eventfdDrain(fd: number): void {
  lib().read(fd, eight, 8);
}

/** poll(2) for readability on several fds; returns how many are readable (0 on timeout). */
export function pollReadable(fds: number[], timeoutMs: number): number {
  const pfd = new Int16Array(fds.length * 4); // struct pollfd { int fd; short events; short revents; }
  const fdv = new Int32Array(pfd.buffer);
  for (let i = 0; i < fds.length; i++) {
    fdv[i * 2] = fds[i]!;
    pfd[i * 4 + 2] = POLLIN;
  }
  return Math.max(0, lib().poll(pfd, fds.length, Math.max(0, Math.floor(timeoutMs))));
}
