import { assert, assertEquals, assertThrows } from "@std/assert";
import { join } from "@std/path";
import { OGG_BOS, OGG_EOS, oggCrc, OggStreamWriter } from "./ogg.ts";
import { OggOpusMuxer, opusHead, opusTags, opusTocSamples } from "./ogg_opus.ts";
import { OpusEncoder } from "../codec/mod.ts";

const hasFfmpeg = await new Deno.Command("sh", { args: ["-c", "command -v ffmpeg"] })
  .output().then((o) => o.success, () => false);

Deno.test("oggCrc matches the CRC-32/OGG check value of '123456789'", () => {
  assertEquals(oggCrc(new TextEncoder().encode("123456789")), 0x89a1897f);
});

Deno.test("OggStreamWriter lays out header, lacing and CRC", () => {
  const w = new OggStreamWriter(0x01020304);
  const page = w.page([new Uint8Array(255).fill(7), new Uint8Array(3).fill(9)], 960n, OGG_BOS);
  assertEquals([...page.subarray(0, 4)], [0x4f, 0x67, 0x67, 0x53]);
  const view = new DataView(page.buffer);
  assertEquals(page[5], OGG_BOS);
  assertEquals(view.getBigInt64(6, true), 960n);
  assertEquals(view.getUint32(14, true), 0x01020304);
  assertEquals(view.getUint32(18, true), 0);
  assertEquals(page[26], 3); // 255 → [255, 0]; 3 → [3]
  assertEquals([...page.subarray(27, 30)], [255, 0, 3]);
  assertEquals(page.length, 27 + 3 + 258);
  const crc = view.getUint32(22, true);
  const zeroed = page.slice();
  zeroed.fill(0, 22, 26);
  assertEquals(oggCrc(zeroed), crc);
  assertEquals(new DataView(w.page([], -1n, OGG_EOS).buffer).getUint32(18, true), 1);
});

Deno.test("OggStreamWriter rejects a page over 255 lacing values", () => {
  const w = new OggStreamWriter(1);
  assertThrows(() => w.page([new Uint8Array(255 * 255)], 0n), RangeError, "lacing values");
});

Deno.test("OpusHead and OpusTags have the RFC 7845 layout", () => {
  const head = opusHead(2, 312, 48000);
  assertEquals(head.length, 19);
  assertEquals(new TextDecoder().decode(head.subarray(0, 8)), "OpusHead");
  assertEquals([head[8], head[9], head[10], head[11]], [1, 2, 312 & 255, 312 >> 8]);
  const tags = opusTags("v", { TITLE: "Nocturne" });
  const view = new DataView(tags.buffer);
  assertEquals(view.getUint32(8, true), 1);
  assertEquals(view.getUint32(13, true), 1);
  assertEquals(view.getUint32(17, true), "TITLE=Nocturne".length);
  assertEquals(new TextDecoder().decode(tags.subarray(21)), "TITLE=Nocturne");
});

Deno.test("opusTocSamples reads frame sizes from the TOC", () => {
  assertEquals(opusTocSamples(Uint8Array.of(0xfc)), 960); // CELT FB 20 ms, code 0
  assertEquals(opusTocSamples(Uint8Array.of(0xfd)), 1920); // code 1: two frames
  assertEquals(opusTocSamples(Uint8Array.of(0xf3, 3)), 3 * 480); // CELT 10 ms, code 3 × 3
  assertEquals(opusTocSamples(Uint8Array.of(0x08)), 960); // SILK NB 20 ms
});

Deno.test({
  name: "oggCrc verifies every page of an Ogg/Opus file written by ffmpeg",
  ignore: !hasFfmpeg,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const file = join(dir, "ref.ogg");
      const r = await new Deno.Command("ffmpeg", {
        args: ["-v", "error", "-f", "lavfi", "-i", "sine=f=440:d=1", "-c:a", "libopus", file],
      }).output();
      assert(r.success, new TextDecoder().decode(r.stderr));
      const bytes = await Deno.readFile(file);
      let pages = 0;
      for (let at = 0; at < bytes.length; pages++) {
        const n = bytes[at + 26]!;
        let len = 27 + n;
        for (let i = 0; i < n; i++) len += bytes[at + 27 + i]!;
        const page = bytes.slice(at, at + len);
        const crc = new DataView(page.buffer).getUint32(22, true);
        page.fill(0, 22, 26);
        assertEquals(oggCrc(page), crc, `page ${pages}`);
        at += len;
      }
      assert(pages >= 3);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "OggOpusMuxer output decodes with ffmpeg without errors, with the expected duration",
  ignore: !hasFfmpeg,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    using enc = await OpusEncoder.create({ channels: 2, frameMs: 20, bitrate: 128_000 });
    const mux = new OggOpusMuxer({ preSkip: enc.lookahead, tags: { TITLE: "sine" } });
    const parts = mux.headers();
    const frames = 150; // 3 s
    const pcm = new Float32Array(960 * 2);
    const packets: Uint8Array[] = [];
    for (let f = 0; f < frames; f++) {
      for (let i = 0; i < 960; i++) {
        const v = 0.3 * Math.sin(2 * Math.PI * 440 * (f * 960 + i) / 48000);
        pcm[2 * i] = v;
        pcm[2 * i + 1] = v;
      }
      packets.push(enc.encode(pcm));
    }
    parts.push(...mux.pages(packets, true));
    assertEquals(mux.granule, BigInt(frames * 960));
    const file = join(dir, "out.ogg");
    await Deno.writeFile(file, new Uint8Array(parts.flatMap((p) => [...p])));
    try {
      const r = await new Deno.Command("ffmpeg", {
        args: ["-v", "error", "-i", file, "-f", "s16le", "-ac", "2", "-ar", "48000", "-"],
      }).output();
      assertEquals(new TextDecoder().decode(r.stderr), "");
      assert(r.success);
      // Duration = granule − pre-skip.
      assertEquals(r.stdout.length / 4, frames * 960 - enc.lookahead);
      const probe = await new Deno.Command("ffprobe", {
        args: [
          "-v",
          "error",
          "-show_entries",
          "stream=codec_name:stream_tags=title",
          "-of",
          "csv=p=0",
          file,
        ],
      }).output();
      assertEquals(new TextDecoder().decode(probe.stdout).trim(), "opus,sine");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
