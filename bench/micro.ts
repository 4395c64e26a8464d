// tinybench wrapped for newts's benchmarks: a task is a batch of `batch` operations,
// so sub-microsecond operations are timed above the timer's resolution.
import { Bench } from "tinybench";

export interface MicroFigure {
  /** Mean cost of one operation, nanoseconds. */
  meanNs: number;
  /** Median and 99th percentile of the per-batch means, nanoseconds per operation. */
  p50Ns: number;
  p99Ns: number;
  /** Relative margin of error of the mean, percent. */
  rme: number;
  /** Operations measured. */
  ops: number;
}

export function measureSync(name: string, batch: number, op: () => void, timeMs: number): MicroFigure {
  const bench = new Bench({ time: timeMs, warmupTime: Math.min(200, timeMs / 4), warmupIterations: 5, iterations: 10 });
  bench.add(name, () => {
    for (let i = 0; i < batch; i++) op();
  });
  const [task] = bench.runSync();
  const r = task!.result as unknown as {
    latency?: { mean: number; p50: number; p99: number; rme: number; samplesCount?: number };
    totalTime?: number;
    error?: Error;
  };
  if (r.error) throw r.error;
  if (!r.latency) throw new Error(`${name}: no result (${JSON.stringify(task!.result)})`);
  const perOp = (ms: number) => (ms * 1e6) / batch;
  const runs = task!.runs ?? 0;
  return { meanNs: perOp(r.latency.mean), p50Ns: perOp(r.latency.p50), p99Ns: perOp(r.latency.p99), rme: r.latency.rme, ops: runs * batch };
}
