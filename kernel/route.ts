// Message routing: outboxes to inboxes. The kernel stamps the true source, checks the
// sender's ACL, validates the message, routes replies only to the caller waiting for
// exactly that call, and buffers messages for a process whose inbox is full or that
// is restarting. Calls the kernel itself makes (ping, srv) wait here for their replies.
import { CORRUPT } from "../lib/ipc/ring.ts";
import {
  decodeHeader, decodeMessage, encodeMessage, F_CALL, F_ERROR, F_REPLY, MAX_MSG, stampSource, type Message,
} from "../lib/ipc/message.ts";
import { KERNEL, MAX_ENDPOINTS } from "../lib/ipc/calls.ts";
import { EAGAIN, EBADMSG, EMSGSIZE, EPERM, ESRCH } from "../lib/sys/errno.ts";
import { NOTIFY } from "../lib/sys/proc.ts";
import type { Slot } from "./slot.ts";
import type { KernelState } from "./state.ts";

/** Messages the kernel holds for a process whose inbox is full (or that is restarting). */
export const BACKLOG_MAX = 4096;
/** Messages taken from one outbox per round, so one process cannot starve the others. */
const OUTBOX_BUDGET = 64;

/** Moves messages from outboxes to inboxes, and kernel calls to the kernel call table. */
export class Router {
  private nextKid = 1;
  /** Calls the kernel made, by id: each resolves with its reply. */
  private readonly awaiting = new Map<number, (m: Message) => void>();

  /**
   * `kernelCall` handles a message to the kernel that is not a reply (kcalls.ts, given
   * by the kernel, which owns the parts the calls need).
   */
  constructor(
    private readonly k: KernelState,
    private readonly kernelCall: (from: Slot, m: Message) => void,
  ) {}

  /** Puts a message into a process's inbox (or its backlog) and wakes it. */
  deliver(target: Slot, bytes: Uint8Array): boolean {
    if (target.backlog.length > 0 || target.state !== "running" || !target.inbox || !target.inbox.tryWrite(bytes)) {
      if (target.backlog.length >= BACKLOG_MAX) return false;
      target.backlog.push(bytes);
      return true;
    }
    target.msgsIn++;
    target.waker.wake();
    return true;
  }

  /** Moves what fits of a process's backlog into its inbox; true if anything moved. */
  flushBacklog(target: Slot): boolean {
    if (target.backlog.length === 0 || target.state !== "running" || !target.inbox) return false;
    let n = 0;
    while (n < target.backlog.length && target.inbox.tryWrite(target.backlog[n]!)) n++;
    if (n > 0) {
      target.backlog.splice(0, n);
      target.msgsIn += n;
      target.waker.wake();
    }
    return n > 0;
  }

  /** An error reply from the kernel (to a process that is running or starting). */
  errorTo(slot: Slot, id: number, type: number, errno: number, error: string): void {
    if (slot.state !== "running" && slot.state !== "starting") return;
    this.deliver(slot, encodeMessage({ dst: slot.ep, src: KERNEL, type, id, flags: F_REPLY | F_ERROR }, { errno, error }));
  }

  /** The kernel's reply to `m`. */
  replyTo(slot: Slot, m: Message, payload: unknown): void {
    this.deliver(slot, encodeMessage({ dst: slot.ep, src: KERNEL, type: m.type, id: m.id, flags: F_REPLY }, payload));
  }

  /** Drains one process's outbox (bounded). Returns messages handled. */
  drainOutbox(from: Slot): number {
    if (!from.outbox || (from.state !== "running" && from.state !== "starting")) return 0;
    let n = 0;
    for (; n < OUTBOX_BUDGET; n++) {
      const raw = from.outbox.tryRead();
      if (raw === null) break;
      if (raw === CORRUPT) {
        // A length prefix over the limit or an impossible index: the ring is resynchronised.
        from.rejected++;
        this.k.stats.rejected++;
        this.errorTo(from, -1, 0, EMSGSIZE, `outbox corrupt or message over ${MAX_MSG} bytes: dropped`);
        continue;
      }
      this.route(from, raw);
    }
    if (n === OUTBOX_BUDGET) Atomics.or(this.k.pending, from.ep >>> 5, 1 << (from.ep & 31));
    return n;
  }

  private route(from: Slot, raw: Uint8Array): void {
    const k = this.k;
    const h = decodeHeader(raw);
    if (!h) {
      from.rejected++;
      k.stats.rejected++;
      this.errorTo(from, -1, 0, EBADMSG, `message of ${raw.length} bytes is shorter than its header`);
      return;
    }
    from.msgsOut++;
    stampSource(raw, from.ep);
    const d = decodeMessage(raw);
    if (!d.ok) {
      from.rejected++;
      k.stats.rejected++;
      if ((h.flags & F_CALL) !== 0 || h.id !== 0) this.errorTo(from, h.id, h.type, EBADMSG, d.error);
      return;
    }
    const m = d.msg;
    m.src = from.ep;
    if (m.dst === KERNEL) {
      if ((m.flags & F_REPLY) !== 0) {
        const cb = this.awaiting.get(m.id);
        if (cb) {
          this.awaiting.delete(m.id);
          cb(m);
        }
        return;
      }
      this.kernelCall(from, m);
      return;
    }
    const target = m.dst >= 0 && m.dst < MAX_ENDPOINTS ? k.slots[m.dst] : undefined;
    if ((m.flags & F_REPLY) !== 0) {
      // A reply goes only to a caller that waits for exactly this call.
      if (target && target.pendingCall && target.pendingCall.target === from.ep && target.pendingCall.id === m.id) {
        target.pendingCall = null;
        this.deliver(target, raw);
        k.stats.routed++;
      }
      return;
    }
    const isCall = (m.flags & F_CALL) !== 0;
    if (!from.ipc.has(m.dst)) {
      from.denied++;
      k.stats.denied++;
      if (isCall || m.type !== NOTIFY) this.errorTo(from, m.id, m.type, EPERM, `${from.entry.name} may not call endpoint ${m.dst}`);
      return;
    }
    if (!target || target.state === "exited" || target.state === "new") {
      if (isCall) this.errorTo(from, m.id, m.type, ESRCH, `no process at endpoint ${m.dst}`);
      return;
    }
    if (m.type === NOTIFY) {
      Atomics.or(target.notifyBits, from.ep >>> 5, 1 << (from.ep & 31));
      target.waker.wake();
      return;
    }
    if (isCall) from.pendingCall = { target: m.dst, id: m.id };
    if (!this.deliver(target, raw)) {
      if (isCall) {
        from.pendingCall = null;
        this.errorTo(from, m.id, m.type, EAGAIN, `${target.entry.name} has ${BACKLOG_MAX} messages queued`);
      }
      return;
    }
    k.stats.routed++;
  }

  /** Sends a call from the kernel itself (ping) and resolves with the reply. */
  callProc(ep: number, type: number, payload: unknown, timeoutMs: number): Promise<Message> {
    const slot = this.k.slots[ep];
    if (!slot) return Promise.reject(new Error(`no process at endpoint ${ep}`));
    const id = this.nextKid++;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.awaiting.delete(id);
        reject(new Error(`${slot.entry.name} did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.awaiting.set(id, (m) => {
        clearTimeout(t);
        resolve(m);
      });
      if (!this.deliver(slot, encodeMessage({ dst: ep, src: KERNEL, type, id, flags: F_CALL }, payload))) {
        clearTimeout(t);
        this.awaiting.delete(id);
        reject(new Error(`${slot.entry.name}: backlog full`));
      }
    });
  }
}
