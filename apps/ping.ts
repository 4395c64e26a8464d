// ping: ICMP echo from inside newts (libc/icmp.ts: through the syscall server to ip).
//   ping [-c COUNT] [-s SIZE] [-i INTERVAL_MS] [-W TIMEOUT_MS] HOST
import { parseArgs } from "node:util";
import { inetAddr } from "../libc/net.ts";
import { ping } from "../libc/icmp.ts";
import { puts } from "../libc/stdio.ts";
import { sleepMs } from "../libc/unistd.ts";
import { ErrnoError, errnoName } from "../libc/errno.ts";

export function main(argv: string[]) {
  let v;
  try {
    v = parseArgs({
      args: argv.slice(1),
      options: { c: { type: "string", default: "4" }, s: { type: "string", default: "56" }, i: { type: "string", default: "1000" }, W: { type: "string", default: "1000" } },
      allowPositionals: true,
    });
  } catch (e) {
    puts(`ping: ${(e as Error).message}`);
    return 2;
  }
  const host = v.positionals[0];
  const count = Number(v.values.c);
  const size = Number(v.values.s);
  const interval = Number(v.values.i);
  const timeout = Number(v.values.W);
  if (!host || !(count >= 1) || !(size >= 0 && size <= 65000) || !(interval >= 0) || !(timeout > 0)) {
    puts("usage: ping [-c COUNT] [-s SIZE] [-i INTERVAL_MS] [-W TIMEOUT_MS] HOST");
    return 2;
  }
  const dst = inetAddr(host);
  puts(`PING ${host} ${size} data bytes`);
  const rtts: number[] = [];
  for (let seq = 1; seq <= count; seq++) {
    try {
      const r = ping(dst, seq, size, timeout);
      rtts.push(r.rttMs);
      puts(`${r.bytes + 8} bytes from ${host}: icmp_seq=${seq} ttl=${r.ttl} time=${r.rttMs.toFixed(3)} ms`);
    } catch (e) {
      if (!(e instanceof ErrnoError)) throw e;
      puts(`from ${host}: icmp_seq=${seq} ${errnoName(e.errno)}`);
    }
    if (seq < count && interval > 0) sleepMs(interval);
  }
  const loss = ((count - rtts.length) / count) * 100;
  puts(`--- ${host} ping statistics --- ${count} transmitted, ${rtts.length} received, ${loss.toFixed(0)}% packet loss`);
  return { status: rtts.length > 0 ? 0 : 1, result: { sent: count, received: rtts.length, rtts } };
}
