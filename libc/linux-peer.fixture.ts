// Test fixture for libc/linux.test.ts: a peer in its own thread, for tests where the test's
// thread blocks in a call (accept, recv, select, epoll_wait) that only the peer can end.
// It plays one script against 127.0.0.1:port and posts { ok: true } or { ok: false, error }.
// It always closes what it opened, so a blocked peer call ends with EOF rather than hanging.
import { parentPort, workerData } from "node:worker_threads";
import { AF_INET, INADDR_LOOPBACK, SOCK_DGRAM, SOCK_STREAM, type SocketApi } from "./api.ts";
import { LinuxSockets } from "./linux.ts";

export interface PeerData {
  /** "stream": connect, wait delayMs, send payload, read to EOF, close. "dgram": wait delayMs, send payload to the port. */
  script: "stream" | "dgram";
  port: number;
  delayMs: number;
  payload: Uint8Array;
  /** The machine's dlopen lock (cell 0). */
  lock: SharedArrayBuffer;
}

const d = workerData as PeerData;
const sleep = (ms: number): void => void Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

function run(api: SocketApi): void {
  const to = { addr: INADDR_LOOPBACK, port: d.port };
  if (d.script === "dgram") {
    const fd = api.socket(AF_INET, SOCK_DGRAM);
    try {
      sleep(d.delayMs);
      api.sendto(fd, d.payload, 0, to);
    } finally {
      api.close(fd);
    }
    return;
  }
  const fd = api.socket(AF_INET, SOCK_STREAM);
  try {
    api.connect(fd, to);
    sleep(d.delayMs);
    let off = 0;
    while (off < d.payload.length) off += api.send(fd, d.payload.subarray(off));
    const buf = new Uint8Array(4096);
    while (api.recv(fd, buf) > 0);
  } finally {
    api.close(fd);
  }
}

try {
  run(new LinuxSockets({ lock: new Int32Array(d.lock) }));
  parentPort!.postMessage({ ok: true });
} catch (e) {
  parentPort!.postMessage({ ok: false, error: String(e) });
}
