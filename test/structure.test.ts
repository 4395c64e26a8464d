// The shape of the tree, checked: the layering rules and limits docs/design.md §7
// states, read from the sources' import lines (no worker is booted).
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, test } from "vitest";

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), "..");
const SKIP = new Set(["node_modules", ".git", ".newts", "www", "docs"]);

function walk(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (SKIP.has(name) || name.startsWith(".")) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith(".ts") && !name.endsWith(".d.ts")) out.push(relative(ROOT, p));
  }
  return out;
}

const FILES = walk(ROOT).sort();
const SOURCE = new Map(FILES.map((f) => [f, readFileSync(join(ROOT, f), "utf8")]));
const isTest = (f: string) => f.startsWith("test/") || /\.(test|fixture)\.ts$/.test(f);

interface Edge {
  to: string;
  typeOnly: boolean;
}

/** Relative imports and re-exports of a file, resolved to repository paths. */
function importsOf(f: string): Edge[] {
  const src = SOURCE.get(f)!;
  const out: Edge[] = [];
  const re = /(?:^|\n)\s*(import|export)\s+(type\s+)?(?:[^"';]*?\s+from\s+)?["'](\.{1,2}\/[^"']+)["']|import\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g;
  for (let m; (m = re.exec(src)); ) {
    const spec = m[3] ?? m[4]!;
    out.push({ to: relative(ROOT, resolve(ROOT, dirname(f), spec)), typeOnly: m[2] !== undefined });
  }
  return out;
}

const GRAPH = new Map(FILES.map((f) => [f, importsOf(f)]));

describe("the tree's structure", () => {
  test("every relative import names a file that exists", () => {
    const missing: string[] = [];
    for (const [f, edges] of GRAPH) for (const e of edges) if (!SOURCE.has(e.to)) missing.push(`${f} -> ${e.to}`);
    expect(missing).toEqual([]);
  });

  test("no file in servers/ is over 400 lines: a server is a thin shell over lib/", () => {
    const fat = FILES.filter((f) => f.startsWith("servers/"))
      .map((f) => ({ f, lines: SOURCE.get(f)!.split("\n").length }))
      .filter((x) => x.lines > 400);
    expect(fat).toEqual([]);
  });

  test("the kernel imports nothing from libc/; apps import nothing from lib/ (libc is their door)", () => {
    const bad: string[] = [];
    for (const [f, edges] of GRAPH) {
      for (const e of edges) {
        if (f.startsWith("kernel/") && e.to.startsWith("libc/")) bad.push(`${f} -> ${e.to}`);
        if (f.startsWith("apps/") && !isTest(f) && e.to.startsWith("lib/")) bad.push(`${f} -> ${e.to}`);
      }
    }
    expect(bad).toEqual([]);
  });

  test("production code imports nothing from test/", () => {
    const bad: string[] = [];
    for (const [f, edges] of GRAPH) {
      if (isTest(f)) continue;
      for (const e of edges) if (isTest(e.to)) bad.push(`${f} -> ${e.to}`);
    }
    expect(bad).toEqual([]);
  });

  test("no import cycle (type-only imports included)", () => {
    // Tarjan's strongly connected components; any component of two or more files is a cycle.
    let index = 0;
    const idx = new Map<string, number>();
    const low = new Map<string, number>();
    const stack: string[] = [];
    const on = new Set<string>();
    const cycles: string[][] = [];
    const visit = (v: string): void => {
      idx.set(v, index);
      low.set(v, index++);
      stack.push(v);
      on.add(v);
      for (const { to } of GRAPH.get(v) ?? []) {
        if (!GRAPH.has(to)) continue;
        if (!idx.has(to)) {
          visit(to);
          low.set(v, Math.min(low.get(v)!, low.get(to)!));
        } else if (on.has(to)) low.set(v, Math.min(low.get(v)!, idx.get(to)!));
      }
      if (low.get(v) === idx.get(v)) {
        const comp: string[] = [];
        for (let w = ""; w !== v; ) {
          w = stack.pop()!;
          on.delete(w);
          comp.push(w);
        }
        if (comp.length > 1) cycles.push(comp.sort());
      }
    };
    for (const f of FILES) if (!idx.has(f)) visit(f);
    expect(cycles).toEqual([]);
  });

  test("nothing outside test/ is used only by tests", () => {
    // Entry points are started by path, not imported: the processes the kernel spawns
    // (servers, the driver, apps), the commands (npm start, ctl, bench, scripts) and
    // workers named by a path string in production code.
    const entry = (f: string) =>
      /^(servers|apps)\/[^/]+\.ts$/.test(f) || /^(bench|scripts)\/[^/]+\.ts$/.test(f) ||
      ["kernel/main.ts", "kernel/ctl.ts", "drivers/nic.ts", "vitest.config.ts"].includes(f);
    const prod = FILES.filter((f) => !isTest(f));
    const importedByProd = new Set<string>();
    for (const f of prod) for (const e of GRAPH.get(f)!) importedByProd.add(e.to);
    // A string literal naming a .ts file, relative to its file or to the root (worker modules).
    const named = new Set<string>();
    for (const g of prod) {
      for (const m of SOURCE.get(g)!.matchAll(/["'`]([^"'`\s]+\.ts)["'`]/g)) {
        named.add(relative(ROOT, resolve(ROOT, dirname(g), m[1]!)));
        named.add(relative(ROOT, resolve(ROOT, m[1]!)));
      }
    }
    const testOnly = prod.filter((f) => !entry(f) && !importedByProd.has(f) && !named.has(f));
    expect(testOnly).toEqual([]);
  });
});
