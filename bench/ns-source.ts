// Run inside a namespace by bench/stack.ts: connects to HOST:PORT, writes N pattern
// bytes (apps/nc.ts's pattern) and closes; prints the milliseconds it took.
import { pattern } from "../apps/nc.ts";

const [host, port, size] = [process.argv[2] ?? "10.0.2.15", Number(process.argv[3]), Number(process.argv[4])];
const chunk = pattern(0, 1 << 16);
let sent = 0;
const t0 = performance.now();
const sock = await Bun.connect({
  hostname: host,
  port,
  socket: {
    drain(s) {
      pump(s);
    },
    close() {
      process.exit(sent >= size ? 0 : 1);
    },
    data() {},
  },
});
function pump(s: typeof sock): void {
  while (sent < size) {
    const n = Math.min(chunk.length, size - sent);
    const w = s.write(pattern(sent, n));
    sent += w;
    if (w < n) return;
  }
  s.end();
  console.log(`${(performance.now() - t0).toFixed(1)}`);
}
pump(sock);
setTimeout(() => process.exit(3), 300_000);
