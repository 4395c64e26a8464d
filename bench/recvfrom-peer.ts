// The channel peer for `npm run bench -- recvfrom`: answers every request with "no data".
import { parentPort, workerData } from "node:worker_threads";
import { loadLibc, pinThread } from "../lib/sys/ffi.ts";
import { SlotRing } from "../lib/ipc/ring.ts";

const d = workerData as { tx: SharedArrayBuffer; rx: SharedArrayBuffer; stop: SharedArrayBuffer; lock: SharedArrayBuffer; cpu: number };
loadLibc(new Int32Array(d.lock, 0, 1));
pinThread([d.cpu]);
const rx = new SlotRing(d.rx); // requests
const tx = new SlotRing(d.tx); // answers
const stop = new Int32Array(d.stop);
const EAGAIN = 11;
for (let i = 0; ; i++) {
  const o = rx.consumeSlot();
  if (o >= 0) {
    rx.consume();
    let a: number;
    while ((a = tx.produceSlot()) < 0);
    tx.view.setInt32(a, -EAGAIN, true);
    tx.produce();
  } else if ((i & 1023) === 0 && Atomics.load(stop, 0) !== 0) break;
}
parentPort!.postMessage("done");
