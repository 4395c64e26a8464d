// Benchmark worker for `npm run bench -- recvfrom`: one figure per run, pinned to a CPU.
//   user: an empty newts socket read in user space (lib/sock, no system call)
//   linux: LinuxSockets.tryRecvfrom (the Linux backend: host system call through bun:ffi)
//   channel: a request over a polled channel to a peer that answers "nothing" (EAGAIN)
import { parentPort, workerData } from "node:worker_threads";
import { loadLibc, pinThread } from "../lib/sys/ffi.ts";
import { measureSync } from "./micro.ts";
import { AppArena, StackArena } from "../lib/sock/arena.ts";
import { SOCK_DGRAM } from "../lib/sock/abi.ts";
import { LinuxSockets } from "../libc/linux.ts";
import { AF_INET, SOCK_NONBLOCK } from "../libc/api.ts";
import { SlotRing } from "../lib/ipc/ring.ts";

const d = workerData as { what: string; timeMs: number; lock: SharedArrayBuffer; cpu: number; tx?: SharedArrayBuffer; rx?: SharedArrayBuffer; stop?: SharedArrayBuffer };
loadLibc(new Int32Array(d.lock, 0, 1));
pinThread([d.cpu]);
const buf = new Uint8Array(2048);
let fig;
if (d.what === "user") {
  let app: AppArena | null = null;
  const pending: [number, SharedArrayBuffer][] = [];
  const stack = new StackArena({ maxSockets: 64, onGrant: (i, sab) => (app ? app.attachSegment(i, sab) : pending.push([i, sab])) });
  app = new AppArena(stack.control);
  for (const [i, sab] of pending) app.attachSegment(i, sab);
  const s = app.open(stack.allocSlot(SOCK_DGRAM))!;
  fig = measureSync("user-space recvfrom", 10_000, () => void s.readDatagram(buf), d.timeMs);
} else if (d.what === "linux") {
  const api = new LinuxSockets();
  const fd = api.socket(AF_INET, 2 | SOCK_NONBLOCK);
  api.bind(fd, { addr: 0x7f000001, port: 0 });
  // tryRecvfrom: the host call and its errno, without a JS throw (libc/api.ts)
  fig = measureSync("linux recvfrom", 1000, () => {
    api.tryRecvfrom(fd, buf, 0);
  }, d.timeMs);
  api.close(fd);
} else {
  // channel: ask over one slot ring, the peer answers on the other.
  const tx = new SlotRing(d.tx!);
  const rx = new SlotRing(d.rx!);
  let seq = 0;
  fig = measureSync("channel recvfrom", 2000, () => {
    let o: number;
    while ((o = tx.produceSlot()) < 0);
    tx.view.setUint32(o, ++seq, true);
    tx.produce();
    for (;;) {
      const i = rx.consumeSlot();
      if (i >= 0) {
        rx.consume();
        return;
      }
    }
  }, d.timeMs);
  Atomics.store(new Int32Array(d.stop!), 0, 1);
}
parentPort!.postMessage(fig);
