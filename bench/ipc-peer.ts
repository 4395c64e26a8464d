// Benchmark worker: one end of a channel (two slot rings and two doorbells).
// The echo end returns every slot it gets; the client end times round trips.
// mode "poll": both ends spin on the rings (the polled hand-off); mode "sleep":
// each end sleeps on its doorbell whenever its ring is empty, so every hop needs
// a futex wake (the sleep-and-wake hand-off).
import { parentPort, workerData } from "node:worker_threads";
import { SlotRing } from "../lib/ipc/ring.ts";
import { Doorbell, Waker } from "../lib/ipc/doorbell.ts";
import { loadLibc, pinThread } from "../lib/sys/ffi.ts";
import { measureSync } from "./micro.ts";

interface PeerData {
  role: "echo" | "client";
  mode: "poll" | "sleep";
  tx: SharedArrayBuffer;
  rx: SharedArrayBuffer;
  mine: SharedArrayBuffer;
  theirs: SharedArrayBuffer;
  stop: SharedArrayBuffer;
  cpu: number;
  lock: SharedArrayBuffer;
  timeMs: number;
}

const d = workerData as PeerData;
loadLibc(new Int32Array(d.lock, 0, 1));
const cpus = pinThread([d.cpu]);
const tx = new SlotRing(d.tx);
const rx = new SlotRing(d.rx);
const bell = new Doorbell(d.mine);
const peer = new Waker(d.theirs);
const stop = new Int32Array(d.stop);
const spin = d.mode === "poll" ? 1 << 30 : 0;

function take(): number {
  for (let i = 0; ; i++) {
    const o = rx.consumeSlot();
    if (o >= 0) {
      const v = rx.view.getUint32(o, true);
      rx.consume();
      return v;
    }
    if (Atomics.load(stop, 0) !== 0) return -1;
    if (i >= spin) {
      bell.sleep(() => rx.consumeSlot() >= 0 || Atomics.load(stop, 0) !== 0, 50);
      i = 0;
    }
  }
}

function put(v: number): void {
  let o: number;
  while ((o = tx.produceSlot()) < 0) {
    /* the other end always drains: a full ring is momentary */
  }
  tx.view.setUint32(o, v, true);
  tx.produce();
  peer.wake();
}

if (d.role === "echo") {
  for (;;) {
    const v = take();
    if (v < 0) break;
    put(v + 1);
  }
  parentPort!.postMessage({ done: true, cpus });
} else {
  let seq = 0;
  const roundTrip = () => {
    put(seq);
    const r = take();
    if (r !== seq + 1) throw new Error(`echo returned ${r} for ${seq}`);
    seq += 2;
  };
  const fig = measureSync(`${d.mode} round trip`, d.mode === "poll" ? 2000 : 50, roundTrip, d.timeMs);
  Atomics.store(stop, 0, 1);
  peer.wake();
  parentPort!.postMessage({ fig, cpus, wakes: bell.wakes });
}
