// httpd's file cache: stat results and file contents, kept under the document root only
// (symbolic links included), with an LRU bound on the bytes held; a file larger than the
// cache takes is stat-cached and streamed from disk by the server.
import { readFileSync, realpathSync, statSync } from "node:fs";
import { httpDate, mimeType } from "./response.ts";

/** How often the stat cache looks at a file again. */
const RESTAT_MS = 1000;

interface FileEntry {
  kind: "file";
  path: string;
  size: number;
  mtimeMs: number;
  lastModified: string;
  type: string;
  /** The bytes, or null when the file is larger than the cache takes (streamed from disk). */
  data: Uint8Array | null;
  checked: number;
}

type Lookup = FileEntry | { kind: "dir" } | { kind: "missing" } | { kind: "forbidden" } | { kind: "error"; why: string };

/** Stat and content cache with an LRU bound on bytes; entries are looked at again after RESTAT_MS. */
export class FileCache {
  private readonly map = new Map<string, FileEntry>();
  bytes = 0;
  hits = 0;
  misses = 0;
  loads = 0;
  constructor(private readonly root: string, private readonly maxBytes: number, private readonly maxFile: number) {}

  get entries(): number {
    return this.map.size;
  }

  lookup(path: string, now: number): Lookup {
    const e = this.map.get(path);
    if (e && now - e.checked < RESTAT_MS) {
      this.map.delete(path);
      this.map.set(path, e); // most recently used last
      this.hits++;
      return e;
    }
    let st;
    try {
      st = statSync(path, { throwIfNoEntry: false });
    } catch (x) {
      return this.fsError(x);
    }
    if (!st) {
      if (e) this.drop(path, e);
      return { kind: "missing" };
    }
    // Never outside the document root, symbolic links included.
    let real: string;
    try {
      real = realpathSync(path);
    } catch (x) {
      return this.fsError(x);
    }
    if (real !== this.root && !real.startsWith(this.root.endsWith("/") ? this.root : `${this.root}/`)) return { kind: "forbidden" };
    if (st.isDirectory()) return { kind: "dir" };
    if (!st.isFile()) return { kind: "forbidden" };
    if (e && e.size === st.size && e.mtimeMs === st.mtimeMs) {
      e.checked = now;
      this.map.delete(path);
      this.map.set(path, e);
      this.hits++;
      return e;
    }
    if (e) this.drop(path, e);
    this.misses++;
    let data: Uint8Array | null = null;
    if (st.size <= this.maxFile && st.size <= this.maxBytes) {
      try {
        data = new Uint8Array(readFileSync(real));
      } catch (x) {
        return this.fsError(x);
      }
      this.loads++;
    }
    const size = data ? data.length : st.size;
    const n: FileEntry = {
      kind: "file", path: real, size, mtimeMs: st.mtimeMs, lastModified: httpDate(Math.min(st.mtimeMs, Date.now())), type: mimeType(path), data, checked: now,
    };
    this.map.set(path, n);
    if (data) {
      this.bytes += data.length;
      for (const [k, old] of this.map) {
        if (this.bytes <= this.maxBytes) break;
        if (old !== n) this.drop(k, old);
      }
    }
    return n;
  }

  private drop(path: string, e: FileEntry): void {
    this.map.delete(path);
    if (e.data) this.bytes -= e.data.length;
  }

  private fsError(x: unknown): Lookup {
    const code = (x as { code?: string }).code;
    if (code === "ENOENT" || code === "ENOTDIR" || code === "ENAMETOOLONG" || code === "ELOOP") return { kind: "missing" };
    if (code === "EACCES" || code === "EPERM") return { kind: "forbidden" };
    return { kind: "error", why: String(code ?? x) };
  }
}
