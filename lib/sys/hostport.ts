// Host-side helper for tests and benchmarks that listen on this machine's loopback.

/** A free TCP port on 127.0.0.1 (bound, then released: another process may take it in between). */
export function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = s.port;
  s.stop(true);
  return p;
}
