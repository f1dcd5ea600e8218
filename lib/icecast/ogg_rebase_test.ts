import { assertEquals, assertThrows } from "@std/assert";
import { oggCrc, OggStreamWriter } from "./ogg.ts";
import { OggRebaser, sharedOggPage } from "./ogg_rebase.ts";

/** Granule, sequence and whether the stored CRC is the CRC of the page (recomputed in full). */
function inspect(bytes: Uint8Array, at: number) {
  const view = new DataView(bytes.buffer, bytes.byteOffset + at);
  const length = 27 + bytes[at + 26]! +
    [...bytes.subarray(at + 27, at + 27 + bytes[at + 26]!)].reduce((n, l) => n + l, 0);
  const page = bytes.slice(at, at + length);
  const stored = new DataView(page.buffer).getUint32(22, true);
  page.fill(0, 22, 26);
  return {
    granule: view.getBigInt64(6, true),
    sequence: view.getUint32(18, true),
    crcOk: oggCrc(page) === stored,
    length,
  };
}

/** A writer's pages after `skip` earlier ones, packets of varied sizes (one to three per page). */
function livePages(count: number, skip: number, granuleStart: bigint) {
  const ogg = new OggStreamWriter(0x1234abcd);
  let granule = granuleStart;
  const pages = [];
  for (let i = 0; i < skip + count; i++) {
    const packets = Array.from(
      { length: 1 + (i % 3) },
      (_, k) => new Uint8Array(100 + ((i * 97 + k * 13) % 900)).map((_, j) => (i + j * 7) & 255),
    );
    const samples = packets.length * 960;
    granule += BigInt(samples);
    const bytes = ogg.page(packets, i % 5 === 4 ? -1n : granule);
    if (i >= skip) pages.push(sharedOggPage(bytes, samples));
  }
  return pages;
}

Deno.test("OggRebaser: a late listener's first page holds its own samples, sequence from 2, CRCs valid", () => {
  const pages = livePages(40, 1000, 172_800_000n); // an hour in
  const rebaser = new OggRebaser();
  const first = rebaser.rebase(pages.slice(0, 1));
  const rest = rebaser.rebase(pages.slice(1));
  const info = inspect(first, 0);
  assertEquals(info, {
    granule: BigInt(pages[0]!.samples),
    sequence: 2,
    crcOk: true,
    length: pages[0]!.bytes.length,
  });
  let at = 0;
  const offset = pages[0]!.granule - BigInt(pages[0]!.samples);
  for (let i = 1; i < pages.length; i++) {
    const page = inspect(rest, at);
    assertEquals(page.crcOk, true, `page ${i}`);
    assertEquals(page.sequence, 2 + i, `page ${i}`);
    // Time advances exactly as in the shared stream; -1 ("no packet ends here") stays.
    const expected = pages[i]!.granule < 0n ? -1n : pages[i]!.granule - offset;
    assertEquals(page.granule, expected, `page ${i}`);
    at += page.length;
  }
  assertEquals(at, rest.length);
  // The shared pages are untouched (every listener gets the same input).
  assertEquals(inspect(pages[0]!.bytes, 0).sequence, 1000);
  assertEquals(inspect(pages[0]!.bytes, 0).crcOk, true);
});

Deno.test("OggRebaser: two listeners joining at different pages get their own time lines", () => {
  const pages = livePages(12, 50, 0n);
  const early = new OggRebaser().rebase(pages);
  const late = new OggRebaser().rebase(pages.slice(6));
  assertEquals(inspect(early, 0).sequence, 2);
  assertEquals(inspect(late, 0).sequence, 2);
  assertEquals(inspect(late, 0).granule, BigInt(pages[6]!.samples));
  assertEquals(inspect(late, 0).crcOk, true);
});

Deno.test("OggRebaser: a first page with granule -1 passes unchanged; the next one starts the line", () => {
  const pages = livePages(10, 4, 5000n); // page 4 of the writer has granule -1
  assertEquals(pages[0]!.granule, -1n);
  const out = new OggRebaser().rebase(pages.slice(0, 2));
  assertEquals(out.subarray(0, pages[0]!.bytes.length), pages[0]!.bytes);
  const second = inspect(out, pages[0]!.bytes.length);
  assertEquals([second.granule, second.sequence, second.crcOk], [
    BigInt(pages[1]!.samples),
    2,
    true,
  ]);
});

Deno.test("sharedOggPage refuses bytes that are not a page", () => {
  assertThrows(() => sharedOggPage(new Uint8Array(10), 960), RangeError, "not an Ogg page");
});
