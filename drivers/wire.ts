// The wire under the NIC. The machine (main thread) opens the device — a TAP in a
// namespace, or a UDP socket for `dgram` — and owns it, as hardware outlives its
// driver; the nic server attaches to the open fd (by number: threads share fds),
// so a restarted driver finds the same device, namespace and port.
import { parseNetdev } from "./backends/index.ts";
import type { Backend } from "./backends/backend.ts";
import { DgramBackend } from "./backends/dgram.ts";
import { FaultyBackend, type FaultOptions } from "./backends/faulty.ts";
import { NetnsTap } from "./backends/netns.ts";
import { TapBackend } from "./backends/tap.ts";
import { PcapBackend } from "./pcap.ts";

/** How the nic attaches to the wire the machine opened (plain data: it crosses to the worker). */
export interface WireSpec {
  kind: "tap" | "dgram" | "none";
  fd: number;
  ifname?: string;
  remotePort?: number;
  remoteHost?: string;
  mac?: string;
  faults?: FaultOptions;
  pcap?: string;
  /** tap in a namespace: its name, for the console. */
  ns?: string;
  /** dgram: the local port bound (for the console and tests). */
  localPort?: number;
}

const FAULT_KEYS: Record<string, keyof FaultOptions> = { loss: "loss", dup: "duplicate", reorder: "reorder", corrupt: "corrupt", seed: "seed" };

/**
 * Opens the wire named by a netdev spec ("none", "tap[,ns=,dev=,addr=]",
 * "dgram,local=P,remote=P[,host=]", with optional fault rates). Throws with a
 * clear message on a bad spec or a device that cannot be opened.
 */
export function openWire(netdev: string, opts: { pcap?: string; mac?: string; lock?: Int32Array | null } = {}): { device: Backend | null; spec: WireSpec } {
  const { kind, opts: o } = parseNetdev(netdev);
  const faults: FaultOptions = {};
  for (const [k, f] of Object.entries(FAULT_KEYS)) {
    const v = o.get(k);
    if (v === undefined) continue;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0 || (f !== "seed" && n > 1)) throw new Error(`netdev: ${k}=${v} is not a rate between 0 and 1`);
    (faults as Record<string, number>)[f] = n;
  }
  const known = new Set([...Object.keys(FAULT_KEYS), "ns", "dev", "addr", "local", "remote", "host"]);
  for (const k of o.keys()) if (!known.has(k)) throw new Error(`netdev: unknown option "${k}"`);
  const common = { mac: opts.mac, faults: Object.keys(faults).length ? faults : undefined, pcap: opts.pcap };
  if (kind === "none") return { device: null, spec: { kind: "none", fd: -1, ...common } };
  if (kind === "tap") {
    const name = o.get("dev") ?? "newts0";
    const ns = o.get("ns") ?? "newts";
    const dev = ns === "none"
      ? new TapBackend({ name, mac: opts.mac, lock: opts.lock })
      : new NetnsTap({ ns, name, address: o.get("addr") ?? "10.0.2.2/24", mac: opts.mac, lock: opts.lock });
    return { device: dev, spec: { kind: "tap", fd: dev.fd, ifname: dev.ifname, ns: ns === "none" ? undefined : ns, ...common } };
  }
  if (kind === "dgram") {
    const local = Number(o.get("local") ?? "0");
    const remote = Number(o.get("remote") ?? "");
    if (!Number.isInteger(local) || !Number.isInteger(remote) || remote <= 0 || remote > 65535 || local < 0 || local > 65535) {
      throw new Error("netdev: dgram needs local=PORT (0: any) and remote=PORT");
    }
    const host = o.get("host") ?? "127.0.0.1";
    if (host !== "127.0.0.1" && !host.startsWith("127.")) throw new Error(`netdev: dgram peers are on loopback only, not ${host}`);
    const dev = new DgramBackend({ localPort: local, remotePort: remote, remoteHost: host, mac: opts.mac, lock: opts.lock });
    return { device: dev, spec: { kind: "dgram", fd: dev.fd, remotePort: remote, remoteHost: host, localPort: dev.port, ...common } };
  }
  throw new Error(`netdev: unknown kind "${kind}" (none, tap or dgram)`);
}

/** The driver's side: a backend on the machine's open fd, with faults and pcap wrapped around it. */
export function attachWire(spec: WireSpec, lock: Int32Array | null): Backend | null {
  let b: Backend;
  if (spec.kind === "none") return null;
  if (spec.kind === "tap") b = new TapBackend({ fd: spec.fd, name: spec.ifname, mac: spec.mac, lock });
  else b = new DgramBackend({ fd: spec.fd, localPort: 0, remotePort: spec.remotePort!, remoteHost: spec.remoteHost, mac: spec.mac, lock });
  if (spec.faults) b = new FaultyBackend(b, spec.faults);
  if (spec.pcap) b = new PcapBackend(b, spec.pcap);
  return b;
}
