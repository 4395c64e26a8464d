// Benchmark app (inside newts) for `npm run bench -- recvfrom`: a nonblocking
// recvfrom on an empty UDP socket by system call (kernel IPC to the syscall server,
// forwarded to udp, and back with EAGAIN).
import { AF_INET, bind, recvfrom, SOCK_DGRAM, socket } from "../libc/net.ts";
import { ErrnoError } from "../lib/sys/errno.ts";
import { measureSync } from "./micro.ts";

export function main(argv: string[]) {
  const fd = socket(AF_INET, SOCK_DGRAM);
  bind(fd, 0, 0);
  const fig = measureSync("kernel IPC recvfrom", 20, () => {
    try {
      recvfrom(fd, 2048, true);
    } catch (e) {
      if (!(e instanceof ErrnoError)) throw e;
    }
  }, Number(argv[1] ?? 1000));
  return { status: 0, result: fig };
}
