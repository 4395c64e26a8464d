// Benchmark app (inside newts) for `npm run bench -- recvfrom`: a nonblocking
// recvfrom on an empty UDP socket by system call (kernel IPC to the syscall server,
// forwarded to udp, and back with EAGAIN); and the same call through libc's newts
// fast sockets (libc/newts.ts: resolved in user space; the API throws ErrnoError for
// EAGAIN, as the Linux backend does), plus poll(timeout 0) on that socket, the check an
// event loop makes instead.
import { AF_INET, bind, recvfrom, SOCK_DGRAM, socket } from "../libc/net.ts";
import { NewtsSockets } from "../libc/newts.ts";
import { POLLIN, SOCK_NONBLOCK } from "../libc/api.ts";
import { ErrnoError } from "../lib/sys/errno.ts";
import type { Proc } from "../lib/sys/proc.ts";
import { measureSync } from "./micro.ts";

export function main(argv: string[], proc: Proc) {
  const ms = Number(argv[1] ?? 1000);
  const fd = socket(AF_INET, SOCK_DGRAM);
  bind(fd, 0, 0);
  const kernel = measureSync("kernel IPC recvfrom", 20, () => {
    try {
      recvfrom(fd, 2048, true);
    } catch (e) {
      if (!(e instanceof ErrnoError)) throw e;
    }
  }, ms);
  const api = new NewtsSockets(proc);
  const s = api.socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK);
  api.bind(s, { addr: 0, port: 0 });
  const buf = new Uint8Array(2048);
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
