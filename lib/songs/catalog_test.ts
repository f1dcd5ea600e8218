import { assert, assertEquals, assertRejects } from "@std/assert";
import { SongCatalog } from "./catalog.ts";

const SONGS = new URL("../../songs/", import.meta.url).pathname;

async function withLibrary(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  const outside = await Deno.makeTempDir();
  try {
    await Deno.copyFile(`${SONGS}04-nocturne.mp3`, `${dir}/b-nocturne.mp3`);
    await Deno.copyFile(`${SONGS}05-square-lullaby.wav`, `${dir}/a-lullaby.wav`);
    await Deno.writeTextFile(`${dir}/notes.txt`, "not a song");
    await Deno.writeTextFile(`${dir}/c-fake.mp3`, "this is not audio at all");
    await Deno.copyFile(`${SONGS}04-nocturne.mp3`, `${outside}/secret.mp3`);
    await Deno.symlink(`${outside}/secret.mp3`, `${dir}/d-escape.mp3`);
    await Deno.copyFile(`${SONGS}04-nocturne.mp3`, `${dir}/.hidden.mp3`);
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
}

Deno.test("SongCatalog lists only decodable audio inside its folder, in name order", async () => {
  await withLibrary(async (dir) => {
    const catalog = await SongCatalog.open(dir);
    assertEquals(catalog.songs.map((s) => [s.index, s.title, s.codec]), [
      [1, "a-lullaby.wav", "wav"],
      [2, "b-nocturne.mp3", "mp3"],
    ]);
    const skipped = Object.fromEntries(catalog.skipped.map((s) => [s.name, s.reason]));
    assertEquals(Object.keys(skipped).sort(), ["c-fake.mp3", "d-escape.mp3"]);
    assertEquals(skipped["d-escape.mp3"], "symlink leads outside the songs folder");
    assert(catalog.songs[1]!.durationMs > 20_000);
  });
});

Deno.test("hostile: SongCatalog.find resolves index, name and stem, never a path", async () => {
  await withLibrary(async (dir) => {
    const catalog = await SongCatalog.open(dir);
    assertEquals(catalog.find("2")?.title, "b-nocturne.mp3");
    assertEquals(catalog.find("b-nocturne.mp3")?.title, "b-nocturne.mp3");
    assertEquals(catalog.find("B-NOCTURNE")?.title, "b-nocturne.mp3");
    for (
      const name of [
        "0",
        "3",
        "-1",
        "",
        "../b-nocturne.mp3",
        `${dir}/b-nocturne.mp3`,
        ".hidden.mp3",
        "d-escape.mp3",
        "..",
        "a\\b",
        "b-nocturne.mp3\0",
        "notes.txt",
      ]
    ) {
      assertEquals(catalog.find(name), undefined, JSON.stringify(name));
    }
  });
});

Deno.test("SongCatalog.openFile refuses a song replaced by a symlink leading out after the scan", async () => {
  await withLibrary(async (dir) => {
    const catalog = await SongCatalog.open(dir);
    const song = catalog.get("b-nocturne.mp3");
    await Deno.remove(`${dir}/b-nocturne.mp3`);
    await Deno.symlink("/etc/hostname", `${dir}/b-nocturne.mp3`);
    await assertRejects(
      () => catalog.openFile(song),
      Error,
      "symlink leads outside the songs folder",
    );
  });
});

Deno.test("SongCatalog.open names a missing folder in its error", async () => {
  await assertRejects(
    () => SongCatalog.open("/no/such/songs"),
    Error,
    `Cannot open songs folder "/no/such/songs": no such folder`,
  );
});

Deno.test("SongCatalog.find matches a name without its track number only when unique", async () => {
  const catalog = await SongCatalog.open(SONGS);
  assertEquals(catalog.find("nocturne")?.title, "04-nocturne.mp3");
  assertEquals(catalog.find("Harbour-Chorale")?.title, "06-harbour-chorale.flac");
  assertEquals(catalog.find("no-such"), undefined);
});

Deno.test("SongCatalog.page fits entries into the byte budget and covers the list in order", async () => {
  const catalog = await SongCatalog.open(SONGS);
  const titles: string[] = [];
  for (let offset = 0; offset < catalog.songs.length;) {
    const page = catalog.page(offset, 300);
    assert(new TextEncoder().encode(JSON.stringify(page)).length <= 300);
    assert(page.songs.length > 0);
    titles.push(...page.songs.map((s) => s.title));
    offset += page.songs.length;
  }
  assertEquals(titles, catalog.songs.map((s) => s.title));
});

Deno.test("SongCatalog.notFoundMessage suggests the song a typo meant, and nothing for another word", async () => {
  const catalog = await SongCatalog.open(SONGS);
  assertEquals(
    catalog.notFoundMessage("nocturen"),
    `Song "nocturen" does not exist (did you mean "04-nocturne.mp3"?)`,
  );
  assertEquals(catalog.suggest("lanter-waltz.mp3")?.title, "02-lantern-waltz.mp3");
  assertEquals(catalog.suggest("harbor-chorale")?.title, "06-harbour-chorale.flac");
  assertEquals(catalog.notFoundMessage("jazz"), `Song "jazz" does not exist`);
  assertEquals(
    catalog.notFoundMessage("x".repeat(300)),
    `Song "${"x".repeat(200)}" does not exist`,
  );
});
