// Benchmark app (inside newts) for `npm run bench -- recvfrom`: a nonblocking
// recvfrom on an empty UDP socket by kernel IPC: on a newts syscall socket (the
// paper's baseline, libc/newts.ts in `syscall` mode), where every read check is a
// system call (SOCK_KICK: the kernel, the syscall server, udp, and back) before the
// ring is looked at; and the same call through libc's newts fast sockets (resolved in
// user space; the API throws ErrnoError for EAGAIN, as the Linux backend does), plus
// poll(timeout 0) on that socket, the check an event loop makes instead.
import { NewtsSockets } from "../libc/newts.ts";
import { AF_INET, POLLIN, SOCK_DGRAM, SOCK_NONBLOCK } from "../libc/api.ts";
import { ErrnoError } from "../lib/sys/errno.ts";
import type { Proc } from "../lib/sys/proc.ts";
import { measureSync } from "./micro.ts";

export function main(argv: string[], proc: Proc) {
  const ms = Number(argv[1] ?? 1000);
  const buf = new Uint8Array(2048);
  // The fast socket first: udp makes this process's arena on its first socket, and
  // walks it (a syscall socket's arena would only be kicked).
  const api = new NewtsSockets(proc);
  const s = api.socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK);
  api.bind(s, { addr: 0, port: 0 });
  const sys = new NewtsSockets(proc, { mode: "syscall" });
  const fd = sys.socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK);
  sys.bind(fd, { addr: 0, port: 0 });
  const kernel = measureSync("kernel IPC recvfrom", 20, () => {
    sys.tryRecvfrom(fd, buf, 0);
  }, ms);
  const before = api.stats().syscalls;
  const libc = measureSync("libc recvfrom (newts fast socket)", 1000, () => {
    try {
      api.recvfrom(s, buf);
    } catch (e) {
      if (!(e instanceof ErrnoError)) throw e;
    }
  }, ms);
  const tryLibc = measureSync("libc tryRecvfrom (newts fast socket)", 1000, () => {
    api.tryRecvfrom(s, buf, 0);
  }, ms);
  const set = [{ fd: s, events: POLLIN }];
  const poll = measureSync("libc poll(0) (newts fast socket)", 1000, () => {
    api.poll(set, 0);
  }, ms);
  const syscallsDuring = api.stats().syscalls - before;
  return { status: 0, result: { kernel, libc, tryLibc, poll, syscallsDuring } };
}
