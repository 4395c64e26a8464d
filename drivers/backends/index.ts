// Builds a backend from a command-line spec: the wire, then the fault injector, then the pcap recorder.
import type { Backend } from "./backend.ts";
import { DgramBackend } from "./dgram.ts";
import { FaultyBackend, type FaultOptions } from "./faulty.ts";
import { NetnsTap } from "./netns.ts";
import { TapBackend } from "./tap.ts";
import { PcapBackend } from "../pcap.ts";

export type { Backend, BackendStats } from "./backend.ts";

export interface BackendSpec {
  /** "tap,ns=newts,dev=newts0,addr=10.0.2.2/24" (ns=none: a bare TAP in our namespace) or
   *  "dgram,local=PORT,remote=PORT[,host=127.0.0.1]", each optionally with
   *  ",loss=R,dup=R,reorder=R,corrupt=R,seed=N" (fault injection). */
  netdev: string;
  /** --pcap FILE: record every frame in and out. */
  pcap?: string;
  mac?: string;
  lock?: Int32Array | null;
}

type FaultKey = "loss" | "duplicate" | "reorder" | "corrupt" | "seed";
const FAULT_KEYS: Record<string, FaultKey> = { loss: "loss", dup: "duplicate", reorder: "reorder", corrupt: "corrupt", seed: "seed" };

/** Parses "kind,k=v,..." into the kind and its options; throws on a malformed item. */
export function parseNetdev(text: string): { kind: string; opts: Map<string, string> } {
  const [kind = "", ...items] = text.split(",");
  const opts = new Map<string, string>();
  for (const it of items) {
    const eq = it.indexOf("=");
    if (eq <= 0) throw new Error(`netdev: "${it}" is not key=value in "${text}"`);
    opts.set(it.slice(0, eq), it.slice(eq + 1));
  }
  return { kind, opts };
}

function num(opts: Map<string, string>, key: string): number | undefined {
  const v = opts.get(key);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v === "" || !Number.isFinite(n)) throw new Error(`netdev: ${key}=${v} is not a number`);
  return n;
}

export function openBackend(spec: BackendSpec): Backend {
  const { kind, opts } = parseNetdev(spec.netdev);
  const known = new Set([...Object.keys(FAULT_KEYS), "ns", "dev", "addr", "local", "remote", "host"]);
  for (const k of opts.keys()) if (!known.has(k)) throw new Error(`netdev: unknown option "${k}"`);
  let b: Backend;
  if (kind === "tap") {
    const name = opts.get("dev") ?? "newts0";
    if (opts.get("ns") === "none") b = new TapBackend({ name, mac: spec.mac, lock: spec.lock });
    else b = new NetnsTap({ ns: opts.get("ns"), name, address: opts.get("addr"), mac: spec.mac, lock: spec.lock });
  } else if (kind === "dgram") {
    const local = num(opts, "local");
    const remote = num(opts, "remote");
    if (local === undefined || remote === undefined) throw new Error("netdev: dgram needs local=PORT and remote=PORT");
    const host = opts.get("host");
    b = new DgramBackend({ localPort: local, remotePort: remote, remoteHost: host, mac: spec.mac, lock: spec.lock });
  } else throw new Error(`netdev: unknown kind "${kind}" (tap or dgram)`);
  const faults: FaultOptions = {};
  for (const [k, f] of Object.entries(FAULT_KEYS)) if (opts.has(k)) faults[f] = num(opts, k);
  try {
    if (Object.keys(faults).length > 0) b = new FaultyBackend(b, faults);
    if (spec.pcap) b = new PcapBackend(b, spec.pcap);
  } catch (e) {
    b.close();
    throw e;
  }
  return b;
}
