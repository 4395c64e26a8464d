// The Linux side of a TAP backend: a network namespace holding the TAP interface, set up with `ip`.
import { existsSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { TapBackend, type TapOptions } from "./tap.ts";

export interface NetnsOptions extends TapOptions {
  /** Namespace name. Default "newts". */
  ns?: string;
  /** Address of the Linux end, with prefix. Default "10.0.2.2/24"; null for none. */
  address?: string | null;
}

/** Runs `ip ARGS`; returns stdout, throws with ip's stderr when it fails. */
export function ip(args: string[]): string {
  const r = spawnSync("ip", args, { encoding: "utf8" });
  if (r.error) throw new Error(`netns: cannot run ip (Debian iproute2): ${r.error.message}`);
  if (r.status !== 0) throw new Error(`netns: ip ${args.join(" ")}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

/** True if namespace `ns` exists. */
export function netnsExists(ns: string): boolean {
  return ip(["netns", "list"]).split("\n").some((l) => l.split(" ")[0] === ns);
}

/**
 * Removes leftovers of a previous run with the same names: the namespace (and every device in
 * it) and a stray `dev` in our namespace. Idempotent; a no-op when nothing is there.
 */
export function cleanupNetns(ns: string, dev: string): void {
  if (netnsExists(ns)) ip(["netns", "del", ns]);
  if (spawnSync("ip", ["link", "show", "dev", dev], { stdio: "ignore" }).status === 0) ip(["link", "del", "dev", dev]);
}

/** Why a TAP + namespace cannot be set up here, or null. */
export function netnsUnavailable(): string | null {
  if (process.getuid?.() !== 0) return "netns: needs root (namespaces and TAP devices need CAP_NET_ADMIN)";
  if (!existsSync("/dev/net/tun")) return "netns: /dev/net/tun is missing";
  if (spawnSync("ip", ["-V"], { stdio: "ignore" }).status !== 0) return "netns: the ip command is missing (Debian iproute2)";
  return null;
}

/**
 * A TAP backend whose Linux end lives in its own namespace `ns` with `address`, up. The fd stays
 * in this process; only the interface moves. close() closes the fd and deletes the namespace.
 */
export class NetnsTap extends TapBackend {
  readonly ns: string;
  /** The Linux end's own MAC (the peer newts talks to), read after setup. */
  readonly peerMac: string;

  constructor(opts: NetnsOptions = {}) {
    const why = netnsUnavailable();
    if (why) throw new Error(why);
    const ns = opts.ns ?? "newts";
    const dev = opts.name ?? "newts0";
    cleanupNetns(ns, dev);
    super({ ...opts, name: dev });
    this.ns = ns;
    try {
      ip(["netns", "add", ns]);
      ip(["link", "set", "dev", this.ifname, "netns", ns]);
      ip(["-n", ns, "link", "set", "dev", "lo", "up"]);
      const address = opts.address === undefined ? "10.0.2.2/24" : opts.address;
      if (address !== null) ip(["-n", ns, "addr", "add", address, "dev", this.ifname]);
      ip(["-n", ns, "link", "set", "dev", this.ifname, "up"]);
      const link = JSON.parse(ip(["-j", "-n", ns, "link", "show", "dev", this.ifname])) as { address?: string }[];
      this.peerMac = link[0]?.address ?? "";
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /** Runs `ARGV` inside the namespace (setup and tests; synchronous). */
  exec(argv: string[]): { status: number | null; stdout: string; stderr: string } {
    const r = spawnSync("ip", ["netns", "exec", this.ns, ...argv], { encoding: "utf8" });
    return { status: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
  }

  override close(): void {
    if (this.fd < 0) return;
    super.close();
    if (netnsExists(this.ns)) ip(["netns", "del", this.ns]);
  }
}
