// The wire under the NIC. The machine (main thread) opens the device — a TAP in a
// namespace, a UDP socket for `dgram`, the loopback listeners of `hostfwd` — and owns
// it, as hardware outlives its driver; the nic server attaches to the open fd (by
// number: threads share fds), so a restarted driver finds the same device, namespace
// and ports. (hostfwd's forwarded connections live in the driver and die with it.)
import { parseNetdev } from "./backends/netdev.ts";
import type { Backend } from "./backends/backend.ts";
import { DgramBackend } from "./backends/dgram.ts";
import { FaultyBackend, type FaultOptions } from "./backends/faulty.ts";
import { type ForwardRule, HostfwdBackend, parseHostfwd } from "./backends/hostfwd.ts";
import { NetnsTap } from "./backends/netns.ts";
import { TapBackend } from "./backends/tap.ts";
import { PcapBackend } from "./pcap.ts";

/** How the nic attaches to the wire the machine opened (plain data: it crosses to the worker). */
export interface WireSpec {
  kind: "tap" | "dgram" | "hostfwd" | "none";
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
  /** hostfwd: the rules with the machine's listening fds and bound ports, the addresses, the fd registry. */
  forwards?: Required<ForwardRule>[];
  hostfwdNet?: string;
  hostfwdHost?: string;
  hostfwdGuest?: string;
  registry?: SharedArrayBuffer;
}

const FAULT_KEYS: Record<string, keyof FaultOptions> = { loss: "loss", dup: "duplicate", reorder: "reorder", corrupt: "corrupt", seed: "seed" };

/**
 * Opens the wire named by a netdev spec ("none", "tap[,ns=,dev=,addr=]",
 * "dgram,local=P,remote=P[,host=]", "hostfwd[,net=,host=,guest=]" with the
 * `hostfwd` rules "tcp:HOSTPORT:GUESTPORT", with optional fault rates). Throws with a
 * clear message on a bad spec or a device that cannot be opened.
 */
export function openWire(
  netdev: string,
  opts: { pcap?: string; mac?: string; lock?: Int32Array | null; hostfwd?: string[] } = {},
): { device: Backend | null; spec: WireSpec } {
  const { kind, opts: o } = parseNetdev(netdev);
  const faults: FaultOptions = {};
  for (const [k, f] of Object.entries(FAULT_KEYS)) {
    const v = o.get(k);
    if (v === undefined) continue;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0 || (f !== "seed" && n > 1)) throw new Error(`netdev: ${k}=${v} is not a rate between 0 and 1`);
    (faults as Record<string, number>)[f] = n;
  }
  const known = new Set([...Object.keys(FAULT_KEYS), "ns", "dev", "addr", "local", "remote", "host", "net", "guest"]);
  for (const k of o.keys()) if (!known.has(k)) throw new Error(`netdev: unknown option "${k}"`);
  const common = { mac: opts.mac, faults: Object.keys(faults).length ? faults : undefined, pcap: opts.pcap };
  if (opts.hostfwd?.length && kind !== "hostfwd") throw new Error(`netdev: --hostfwd needs the hostfwd wire, not ${kind}`);
  if (kind !== "hostfwd" && (o.has("net") || o.has("guest"))) throw new Error(`netdev: net= and guest= are hostfwd options`);
  if (kind === "none") return { device: null, spec: { kind: "none", fd: -1, ...common } };
  if (kind === "hostfwd") {
    const forwards = (opts.hostfwd ?? []).map((r) => {
      const f = parseHostfwd(r);
      if (typeof f === "string") throw new Error(`netdev: ${f}`);
      return f;
    });
    const [net, host, guest] = [o.get("net"), o.get("host"), o.get("guest")];
    let dev: HostfwdBackend;
    try {
      dev = new HostfwdBackend({ forwards, net, host, guest, mac: opts.mac, lock: opts.lock });
    } catch (e) {
      const m = (e as Error).message;
      throw new Error(m.startsWith("netdev:") ? m : `netdev: ${m}`);
    }
    const spec: WireSpec = { kind: "hostfwd", fd: -1, forwards: dev.forwards.map((f) => ({ ...f })), registry: dev.registry, ...common };
    if (net) spec.hostfwdNet = net;
    if (host) spec.hostfwdHost = host;
    if (guest) spec.hostfwdGuest = guest;
    return { device: dev, spec };
  }
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
  throw new Error(`netdev: unknown kind "${kind}" (none, tap, dgram or hostfwd)`);
}

/** The driver's side: a backend on the machine's open fd, with faults and pcap wrapped around it. */
export function attachWire(spec: WireSpec, lock: Int32Array | null): Backend | null {
  let b: Backend;
  if (spec.kind === "none") return null;
  if (spec.kind === "tap") b = new TapBackend({ fd: spec.fd, name: spec.ifname, mac: spec.mac, lock });
  else if (spec.kind === "hostfwd") {
    b = new HostfwdBackend({
      forwards: spec.forwards ?? [], registry: spec.registry, net: spec.hostfwdNet, host: spec.hostfwdHost, guest: spec.hostfwdGuest, mac: spec.mac, lock,
    });
  } else b = new DgramBackend({ fd: spec.fd, localPort: 0, remotePort: spec.remotePort!, remoteHost: spec.remoteHost, mac: spec.mac, lock });
  if (spec.faults) b = new FaultyBackend(b, spec.faults);
  if (spec.pcap) b = new PcapBackend(b, spec.pcap);
  return b;
}
