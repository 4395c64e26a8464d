// The control socket: a Unix socket where each connection sends one JSON line
// { cmd, args } and gets one JSON line { ok, data } or { ok: false, error } back.
import { tmpdir } from "node:os";
import { join } from "node:path";

export function defaultCtlPath(): string {
  return process.env.NEWTS_CTL || join(tmpdir(), `newts-${process.getuid?.() ?? 0}.ctl`);
}

export interface CtlRequest {
  cmd: string;
  args: string[];
}

export type CtlReply = { ok: true; data: unknown } | { ok: false; error: string };

/** Sends one request; rejects on connection errors, with the path in the message. */
export async function ctlRequest(path: string, req: CtlRequest, timeoutMs = 5000): Promise<CtlReply> {
  return new Promise((resolve, reject) => {
    let buf = "";
    let settled = false;
    const t = setTimeout(() => finish(new Error(`no answer from ${path} within ${timeoutMs} ms`)), timeoutMs);
    function finish(err: Error | null, reply?: CtlReply) {
      if (settled) return;
      settled = true;
      clearTimeout(t);
      if (err) reject(err);
      else resolve(reply!);
    }
    Bun.connect({
      unix: path,
      socket: {
        open(s) {
          s.write(JSON.stringify(req) + "\n");
        },
        data(s, d) {
          buf += d.toString();
          const nl = buf.indexOf("\n");
          if (nl >= 0) {
            try {
              finish(null, JSON.parse(buf.slice(0, nl)) as CtlReply);
            } catch (e) {
              finish(new Error(`bad reply from ${path}: ${(e as Error).message}`));
            }
            s.end();
          }
        },
        close() {
          finish(new Error(`${path} closed the connection without answering`));
        },
        error(_s, e) {
          finish(e);
        },
      },
    }).catch((e: Error) => finish(new Error(`cannot reach newts at ${path}: ${e.message}`)));
  });
}
