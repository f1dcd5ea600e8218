/**
 * Issue #14: `tls-client radio --report FILE.html` — the TLS radio's session as the same
 * self-contained picture: one arrival per DATA packet (TCP loses none, so no loss marks), the
 * buffer level, the statistics; it opens in Chromium.
 */

import { assert, assertEquals, assertMatch } from "@std/assert";
import { join } from "@std/path";
import { makeSongs, startTestServer } from "./_tls_helpers.ts";
import { launchChromium } from "./_web_helpers.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "tls-client radio --report: one arrival per DATA packet, no loss marks, the buffer level; opens in Chromium",
  opts,
  async () => {
    const songs = await makeSongs({ "a.wav": [8, 22050, 1] });
    await using t = await startTestServer(songs);
    const dir = await Deno.makeTempDir({ prefix: "soundsock-report-" });
    try {
      const report = join(dir, "radio.html");
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", `${ROOT}cmd/tls_client.ts`, "radio", "--server", `localhost:${t.port}`]
          .concat(["--ca", t.certs.caCert, "--seconds", "3", "-o", join(dir, "radio.wav")])
          .concat(["--report", report, "--log", join(dir, "events.jsonl")]),
        env: { NO_COLOR: "1" },
        stdin: "null",
        signal: AbortSignal.timeout(60_000),
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assertEquals(out.code, 0, stderr);
      assertMatch(stderr, /^Report: .*radio\.html$/m);
      const html = await Deno.readTextFile(report);
      const packets = Number(/<th>packets<\/th><td>(\d+)<\/td>/.exec(html)?.[1]);
      // 100 ms per packet, the 400 ms join burst and 3 s: about 34 packets.
      assert(packets >= 25 && packets <= 45, `${packets} packets`);
      // One arrival mark (a path segment) per packet, and nothing lost on TCP.
      const arrivals = /<path class="arrival" d="([^"]*)"/.exec(html)?.[1] ?? "";
      assertEquals(arrivals.match(/M/g)?.length ?? 0, packets);
      assertEquals(html.match(/<line class="lost"/g), null);
      assertMatch(html, /buffer/i);
      assertMatch(html, /<th>ended_by<\/th><td>seconds<\/td>/);
      assertEquals(html.match(/(src|href)=/g), null);
      assertEquals(html.replaceAll("http://www.w3.org/2000/svg", "").match(/https?:/g), null);

      const browser = await launchChromium();
      try {
        const page = await browser.newPage();
        await page.goto(`file://${report}`);
        const box = await page.locator("svg").boundingBox();
        assert(box && box.width > 500 && box.height > 300, JSON.stringify(box));
        const shot = join(dir, "radio.png");
        await page.screenshot({ path: shot, fullPage: true });
        assertEquals([...(await Deno.readFile(shot)).subarray(1, 4)], [0x50, 0x4e, 0x47]);
      } finally {
        await browser.close();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
      await Deno.remove(songs, { recursive: true });
    }
  },
);

Deno.test("tls-client --report is for radio: other commands are a usage error", opts, async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}cmd/tls_client.ts`, "list", "--report", "x.html"],
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  assertEquals(out.code, 2);
  assertMatch(new TextDecoder().decode(out.stderr), /^error: --report works with radio/);
});
