// Building HTTP/1.1 responses for apps/httpd.ts: status lines and header blocks as bytes,
// HTTP dates (IMF-fixdate out; IMF-fixdate, RFC 850 and asctime in), MIME types by
// extension, single byte ranges (RFC 9110 §14) and the small HTML bodies of error answers.
// Pure functions: no I/O, no clock except where a time is passed in.

export const STATUS_TEXT: Readonly<Record<number, string>> = Object.freeze({
  200: "OK",
  206: "Partial Content",
  301: "Moved Permanently",
  304: "Not Modified",
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  413: "Content Too Large",
  414: "URI Too Long",
  416: "Range Not Satisfiable",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
  505: "HTTP Version Not Supported",
});

export const SERVER_NAME = "newts-httpd/0.1";

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const pad2 = (n: number) => (n < 10 ? "0" : "") + n;

/** IMF-fixdate of a time in ms since the epoch: "Sun, 06 Nov 1994 08:49:37 GMT". */
export function httpDate(ms: number): string {
  const d = new Date(ms);
  return `${DAYS[d.getUTCDay()]}, ${pad2(d.getUTCDate())} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())} GMT`;
}

let dateSec = -1;
let dateText = "";
/** httpDate of now, made once per second. */
export function httpDateNow(nowMs = Date.now()): string {
  const s = Math.floor(nowMs / 1000);
  if (s !== dateSec) {
    dateSec = s;
    dateText = httpDate(s * 1000);
  }
  return dateText;
}

/** Common log format's time: "10/Oct/2000:13:55:36 +0000". */
export function clfDate(ms: number): string {
  const d = new Date(ms);
  return `${pad2(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())} +0000`;
}

/**
 * An HTTP-date (RFC 9110 §5.6.7) in ms since the epoch, or null: IMF-fixdate
 * ("Sun, 06 Nov 1994 08:49:37 GMT"), RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT") or asctime
 * ("Sun Nov  6 08:49:37 1994").
 */
export function parseHttpDate(s: string): number | null {
  let day: string, mon: string, year: number, hms: string;
  let m = /^[A-Z][a-z]{2}, (\d{2}) ([A-Z][a-z]{2}) (\d{4}) (\d{2}:\d{2}:\d{2}) GMT$/.exec(s);
  if (m) {
    day = m[1]!;
    mon = m[2]!;
    year = Number(m[3]);
    hms = m[4]!;
  } else if ((m = /^[A-Z][a-z]+, (\d{2})-([A-Z][a-z]{2})-(\d{2}) (\d{2}:\d{2}:\d{2}) GMT$/.exec(s))) {
    day = m[1]!;
    mon = m[2]!;
    const yy = Number(m[3]);
    year = yy < 70 ? 2000 + yy : 1900 + yy;
    hms = m[4]!;
  } else if ((m = /^[A-Z][a-z]{2} ([A-Z][a-z]{2}) ([ \d]\d) (\d{2}:\d{2}:\d{2}) (\d{4})$/.exec(s))) {
    mon = m[1]!;
    day = m[2]!.trim();
    hms = m[3]!;
    year = Number(m[4]);
  } else return null;
  const month = MONTHS.indexOf(mon);
  const D = Number(day);
  const [H, M, S] = hms.split(":").map(Number) as [number, number, number];
  if (month < 0 || D < 1 || D > 31 || H > 23 || M > 59 || S > 60) return null;
  const t = Date.UTC(year, month, D, H, M, S);
  return Number.isFinite(t) ? t : null;
}

const MIME: Readonly<Record<string, string>> = Object.freeze({
  html: "text/html; charset=utf-8",
  htm: "text/html; charset=utf-8",
  css: "text/css; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  mjs: "text/javascript; charset=utf-8",
  json: "application/json",
  txt: "text/plain; charset=utf-8",
  md: "text/markdown; charset=utf-8",
  csv: "text/csv; charset=utf-8",
  xml: "application/xml",
  svg: "image/svg+xml",
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  gif: "image/gif",
  webp: "image/webp",
  avif: "image/avif",
  ico: "image/x-icon",
  pdf: "application/pdf",
  wasm: "application/wasm",
  woff: "font/woff",
  woff2: "font/woff2",
  ttf: "font/ttf",
  mp3: "audio/mpeg",
  ogg: "audio/ogg",
  mp4: "video/mp4",
  webm: "video/webm",
  zip: "application/zip",
  gz: "application/gzip",
  tar: "application/x-tar",
  bin: "application/octet-stream",
});

/** The Content-Type for a file name, by its extension (case-insensitive); application/octet-stream if unknown. */
export function mimeType(name: string): string {
  const slash = name.lastIndexOf("/");
  const dot = name.lastIndexOf(".");
  if (dot <= slash + 1) return "application/octet-stream"; // none, or a dot file
  return MIME[name.slice(dot + 1).toLowerCase()] ?? "application/octet-stream";
}

/** Bytes start..end inclusive. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * A Range header against a representation of `size` bytes (RFC 9110 §14.1.2, single ranges):
 * a range to answer with 206; "unsatisfiable" (416); or null: ignore the header and answer 200
 * (not the bytes unit, malformed, last < first, or several ranges, which this server does not
 * send as multipart/byteranges).
 */
export function parseRange(header: string, size: number): ByteRange | "unsatisfiable" | null {
  const m = /^bytes[ \t]*=[ \t]*(\d{0,15})[ \t]*-[ \t]*(\d{0,15})[ \t]*$/i.exec(header);
  if (!m) return null;
  const a = m[1]!;
  const b = m[2]!;
  if (a === "" && b === "") return null;
  if (a === "") {
    const n = Number(b);
    if (n === 0 || size === 0) return "unsatisfiable";
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  const last = b === "" ? Number.POSITIVE_INFINITY : Number(b);
  if (last < start) return null;
  if (start >= size) return "unsatisfiable";
  return { start, end: Math.min(last, size - 1) };
}

const enc = new TextEncoder();

export type HeaderList = Array<[string, string | number]>;

/** "HTTP/1.1 STATUS TEXT", the headers and the empty line, as bytes. */
export function responseHead(status: number, headers: HeaderList): Uint8Array {
  let s = `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "Unknown"}\r\n`;
  for (const [k, v] of headers) s += `${k}: ${v}\r\n`;
  s += "\r\n";
  return enc.encode(s);
}

const errorBodies = new Map<number, Uint8Array>();

/** The small HTML body of an error answer. */
export function errorBody(status: number): Uint8Array {
  let b = errorBodies.get(status);
  if (!b) {
    const t = `${status} ${STATUS_TEXT[status] ?? "Error"}`;
    b = enc.encode(`<!DOCTYPE html>\n<html><head><title>${t}</title></head><body><h1>${t}</h1></body></html>\n`);
    errorBodies.set(status, b);
  }
  return b;
}

/** Escapes text for an HTML attribute or element (the Location of a redirect shown in its body). */
export function htmlEscape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Percent-encodes a decoded path for a Location header (keeps "/" and unreserved characters). */
export function encodePath(path: string): string {
  return path.split("/").map((s) => encodeURIComponent(s)).join("/");
}
