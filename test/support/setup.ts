// Loaded before every test file (vitest.config.ts): when a test fails, the console
// of every machine still running (rs's restart reasons, crashes, app failures) is
// printed with it, so a failure seen once in CI can be explained from its log.
import { afterEach } from "vitest";
import { Machine } from "../../kernel/boot.ts";

const SHOWN = 60;

afterEach((ctx) => {
  if (ctx.task.result?.state !== "fail") return;
  for (const m of Machine.live) {
    const lines = m.logs.filter((l) => !l.startsWith("[boot]")).slice(-SHOWN);
    console.log(`--- the machine's last ${lines.length} console lines (of ${m.logs.length}) ---\n${lines.join("\n")}`);
  }
});
