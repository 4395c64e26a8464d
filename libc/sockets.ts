// Picks a libc socket backend by name, so one app's code runs on every backend
// unchanged and can be measured side by side. Apps take `--sockets fast|syscall|linux`.
//   fast     newts sockets on shared rings: no system call on the fast path (default)
//   syscall  the same rings and stack, but every write and read check is a system
//            call and the stack does not poll (the paper's baseline)
//   linux    the host kernel's sockets through bun:ffi
import type { SocketApi } from "./api.ts";
import { LinuxSockets } from "./linux.ts";
import { NewtsSockets } from "./newts.ts";

export const BACKENDS = ["fast", "syscall", "linux"] as const;
export type Backend = (typeof BACKENDS)[number];

export function isBackend(s: string): s is Backend {
  return (BACKENDS as readonly string[]).includes(s);
}

/** The socket API of one backend (newts backends need to run inside a newts process). */
export function openSockets(backend: Backend = "fast"): SocketApi {
  switch (backend) {
    case "fast":
      return new NewtsSockets(undefined, { mode: "fast" });
    case "syscall":
      return new NewtsSockets(undefined, { mode: "syscall" });
    case "linux":
      return new LinuxSockets();
  }
}

/**
 * Takes `--sockets NAME` (or `--sockets=NAME`) out of argv; the backend named, or
 * the default. A bad name is an Error that says which names there are.
 */
export function socketsFromArgs(argv: string[], fallback: Backend = "fast"): Backend {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    let v: string | undefined;
    if (a === "--sockets") {
      v = argv[i + 1];
      argv.splice(i, 2);
    } else if (a.startsWith("--sockets=")) {
      v = a.slice("--sockets=".length);
      argv.splice(i, 1);
    } else continue;
    if (v === undefined || !isBackend(v)) throw new Error(`--sockets: expected one of ${BACKENDS.join(", ")}, got ${v === undefined ? "nothing" : `'${v}'`}`);
    return v;
  }
  return fallback;
}
