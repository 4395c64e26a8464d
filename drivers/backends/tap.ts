// The TAP backend: a Linux TAP device opened through /dev/net/tun with bun:ffi, nonblocking, no packet info.
import { existsSync } from "node:fs";
import { EACCES, EAGAIN, EBUSY, EPERM, ErrnoError } from "../../lib/sys/errno.ts";
import { type Backend, type BackendStats, MAX_FRAME, MIN_FRAME, macOf, zeroStats } from "./backend.ts";
import { cstr, errno, netLibc, O_CLOEXEC, O_NONBLOCK, O_RDWR } from "./libc.ts";

// <linux/if_tun.h>: TUNSETIFF = _IOW('T', 202, int); flags for ifr_flags.
const TUNSETIFF = 0x400454ca;
const IFF_TAP = 0x0002;
const IFF_NO_PI = 0x1000;

//  struct ifreq (40 bytes on 64-bit Linux)
//  0                16         18                 40
//  +----------------+----------+------------------+
//  | ifr_name[16]   | ifr_flags| rest of the union|
//  +----------------+----------+------------------+
const IFNAMSIZ = 16;
const IFR_FLAGS = 16;
const IFREQ_LEN = 40;

export interface TapOptions {
  /** Interface name (at most 15 bytes); "" lets the kernel pick tapN. Default "newts0". */
  name?: string;
  /** The NIC's MAC (ours, not the Linux interface's). */
  mac?: string | Uint8Array;
  /** The machine's dlopen lock, for the first dlopen of libc in this thread. */
  lock?: Int32Array | null;
  /**
   * An already open TAP fd to drive (`name` then gives its interface name). The
   * machine owns the device and the driver attaches to it, so a restarted driver
   * finds the same device and the namespace around it untouched.
   */
  fd?: number;
}

/** A TAP device. The fd is ours; the Linux end is the interface `ifname`. Closing the fd removes it. */
export class TapBackend implements Backend {
  readonly name: string;
  readonly mac: Uint8Array;
  /** The interface name the kernel gave the device. */
  readonly ifname: string;
  private fdNum: number;
  private readonly buf = new Uint8Array(MAX_FRAME);
  private readonly counters: BackendStats = zeroStats();

  constructor(opts: TapOptions = {}) {
    const want = opts.name ?? "newts0";
    this.mac = macOf(opts.mac);
    if (opts.fd !== undefined) {
      netLibc(opts.lock ?? null);
      this.fdNum = opts.fd;
      this.ifname = want;
      this.name = `tap:${want}`;
      return;
    }
    if (new TextEncoder().encode(want).length >= IFNAMSIZ) throw new Error(`tap: interface name "${want}" is longer than 15 bytes`);
    if (!existsSync("/dev/net/tun")) throw new Error("tap: /dev/net/tun is missing (load the tun module, or give the container the device)");
    const libc = netLibc(opts.lock ?? null);
    const fd = libc.open(cstr("/dev/net/tun"), O_RDWR | O_NONBLOCK | O_CLOEXEC, 0);
    if (fd < 0) {
      const e = errno();
      throw new ErrnoError(e, `tap: open /dev/net/tun${e === EPERM || e === EACCES ? " (permission denied: needs root)" : ""}`);
    }
    const ifr = new Uint8Array(IFREQ_LEN);
    ifr.set(new TextEncoder().encode(want));
    new DataView(ifr.buffer).setUint16(IFR_FLAGS, IFF_TAP | IFF_NO_PI, true);
    if (libc.ioctl(fd, TUNSETIFF, ifr) < 0) {
      const e = errno();
      libc.close(fd);
      const hint = e === EPERM ? " (needs root or CAP_NET_ADMIN)" : e === EBUSY ? " (the device exists and is in use)" : "";
      throw new ErrnoError(e, `tap: TUNSETIFF ${want || "(any)"}${hint}`);
    }
    const end = ifr.indexOf(0);
    this.ifname = new TextDecoder().decode(ifr.subarray(0, end < 0 || end > IFNAMSIZ ? IFNAMSIZ : end));
    this.fdNum = fd;
    this.name = `tap:${this.ifname}`;
  }

  get fd(): number {
    return this.fdNum;
  }

  recv(max: number, onFrame: (frame: Uint8Array) => void): number {
    const libc = netLibc();
    const c = this.counters;
    let got = 0;
    while (got < max && this.fdNum >= 0) {
      const n = libc.read(this.fdNum, this.buf, this.buf.length);
      if (n < 0) {
        if (errno() !== EAGAIN) c.rxErrors++;
        break;
      }
      if (n < MIN_FRAME) {
        c.rxErrors++;
        continue;
      }
      c.rxFrames++;
      c.rxBytes += n;
      got++;
      onFrame(this.buf.subarray(0, n));
    }
    return got;
  }

  send(frame: Uint8Array): boolean {
    const c = this.counters;
    if (this.fdNum < 0 || frame.length < MIN_FRAME || frame.length > MAX_FRAME) {
      c.txDropped++;
      return false;
    }
    // A TAP write is one whole frame or nothing (EAGAIN, or EIO while the interface is down).
    if (netLibc().write(this.fdNum, frame, frame.length) !== frame.length) {
      c.txDropped++;
      return false;
    }
    c.txFrames++;
    c.txBytes += frame.length;
    return true;
  }

  stats(): BackendStats {
    return { ...this.counters };
  }

  close(): void {
    if (this.fdNum < 0) return;
    netLibc().close(this.fdNum);
    this.fdNum = -1;
  }
}
