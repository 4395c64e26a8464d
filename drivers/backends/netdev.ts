// The netdev spec's syntax (`--net KIND,k=v,...`): drivers/wire.ts gives the kinds and
// options their meaning.

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
