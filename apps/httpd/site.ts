// httpd's sample site: the www/ folder of this repository, the default document root,
// whose generated .bin files are written at start-up when missing.
import { existsSync, renameSync, statSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** The sample site. */
export const DEFAULT_DOCROOT = fileURLToPath(new URL("../../www", import.meta.url));
/** The sample site's generated files and their sizes. */
export const SAMPLE_BINS: Readonly<Record<string, number>> = Object.freeze({ "11k.bin": 11 * 1024, "512k.bin": 512 * 1024 });

/** Byte i of a generated sample file (the pattern of apps/nc.ts). */
export function samplePattern(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >>> 10)) & 0xff;
  return b;
}

/** Writes the sample site's .bin files that are missing (atomically: another httpd may do the same). */
export function makeSampleFiles(dir: string): void {
  for (const [name, size] of Object.entries(SAMPLE_BINS)) {
    const path = `${dir}/${name}`;
    if (existsSync(path) && statSync(path).size === size) continue;
    const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    writeFileSync(tmp, samplePattern(size));
    renameSync(tmp, path);
  }
}
