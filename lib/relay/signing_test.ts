import { assertEquals, assertRejects } from "@std/assert";
import { decodeDatagram, encodeFrame, FrameType } from "../wire/frame.ts";
import { ManifestError, ManifestSigner, StreamVerifier } from "./signing.ts";

const STREAM = 0x1234abcd;

function dataFrames(first: number, n: number): Uint8Array[] {
  return Array.from({ length: n }, (_, i) =>
    encodeFrame({
      type: FrameType.DATA,
      streamId: STREAM,
      sequence: first + i,
      timestamp: (first + i) * 100_000,
      payload: new Uint8Array(300).fill((first + i) & 0xff),
    }));
}

async function setup() {
  const signer = await ManifestSigner.create(STREAM);
  const verifier = await StreamVerifier.create(signer.publicKey, STREAM);
  return { signer, verifier };
}

function manifestPayload(frame: Uint8Array) {
  const f = decodeDatagram(frame);
  assertEquals(f.type, FrameType.RELAY_MANIFEST);
  return { payload: f.payload, sequence: f.sequence };
}

Deno.test("relay signing: a valid signed stream verifies frame by frame", async () => {
  const { signer, verifier } = await setup();
  for (let w = 0; w < 3; w++) {
    const frames = dataFrames(w * 10, 10);
    const m = manifestPayload(await signer.sign(frames));
    assertEquals(m.sequence, w);
    assertEquals(await verifier.manifest(m.payload, m.sequence), "ok");
    for (const f of frames) assertEquals(verifier.frame(f), "ok");
  }
  assertEquals(verifier.stats.frames, 30);
  assertEquals(verifier.stats.forgedFrames, 0);
});

Deno.test("relay signing: one flipped bit in a frame, or in a manifest, is detected", async () => {
  const { signer, verifier } = await setup();
  const frames = dataFrames(0, 10);
  const manifest = await signer.sign(frames);
  // A bit of the manifest's hash list: the signature no longer matches.
  const { payload } = manifestPayload(manifest);
  const bad = payload.slice();
  bad[20]! ^= 0x01;
  assertEquals(await verifier.manifest(bad), "forged");
  assertEquals(await verifier.manifest(payload), "ok");
  for (const bit of [0, 7, 31 * 8, 100 * 8 + 3]) {
    const f = frames[3]!.slice();
    f[bit >> 3]! ^= 1 << (bit & 7);
    assertEquals(verifier.frame(f), "forged", `bit ${bit}`);
  }
  assertEquals(verifier.frame(frames[3]!), "ok");
  assertEquals(verifier.stats.forgedManifests, 1);
  assertEquals(verifier.stats.forgedFrames, 4);
});

Deno.test("relay signing: an injected frame is rejected; duplicates and reordering are not played", async () => {
  const { signer, verifier } = await setup();
  const frames = dataFrames(0, 5);
  assertEquals(await verifier.manifest(manifestPayload(await signer.sign(frames)).payload), "ok");
  const [injected] = dataFrames(2, 1).map((f) => {
    const g = f.slice();
    g[40] = 0xee; // a plausible DATA frame with a valid CRC would still differ from the signed one
    return g;
  });
  assertEquals(verifier.frame(injected!), "forged");
  // A frame before any manifest is unverifiable.
  const fresh = await StreamVerifier.create(signer.publicKey, STREAM);
  assertEquals(fresh.frame(frames[0]!), "forged");
  assertEquals(verifier.frame(frames[0]!), "ok");
  assertEquals(verifier.frame(frames[2]!), "ok");
  assertEquals(verifier.frame(frames[1]!), "duplicate"); // behind the last accepted: not replayed
  assertEquals(verifier.frame(frames[2]!), "duplicate");
  assertEquals(verifier.frame(frames[4]!), "ok");
});

Deno.test("relay signing: a replayed manifest is rejected and its frames are not played again", async () => {
  const { signer, verifier } = await setup();
  const w0 = dataFrames(0, 4);
  const m0 = manifestPayload(await signer.sign(w0)).payload;
  const w1 = dataFrames(4, 4);
  const m1 = manifestPayload(await signer.sign(w1)).payload;
  assertEquals(await verifier.manifest(m0), "ok");
  for (const f of w0) verifier.frame(f);
  assertEquals(await verifier.manifest(m1), "ok");
  assertEquals(verifier.frame(w1[0]!), "ok");
  assertEquals(await verifier.manifest(m0), "replay");
  for (const f of w0) assertEquals(verifier.frame(f), "stale");
  assertEquals(await verifier.manifest(m1), "same");
  assertEquals(verifier.frame(w1[1]!), "ok");
  // A listener told the server's current index refuses older manifests even as its first.
  const late = await StreamVerifier.create(signer.publicKey, STREAM, { minIndex: 1 });
  assertEquals(await late.manifest(m0), "replay");
  assertEquals(await late.manifest(m1), "ok");
  assertEquals(verifier.stats.replayedManifests, 1);
});

Deno.test("relay signing: another key's or another stream's manifest is forged; a bad key is refused", async () => {
  const { verifier } = await setup();
  const other = await ManifestSigner.create(STREAM);
  assertEquals(
    await verifier.manifest(manifestPayload(await other.sign(dataFrames(0, 2))).payload),
    "forged",
  );
  const otherStream = await ManifestSigner.create(STREAM + 1);
  const v2 = await StreamVerifier.create(otherStream.publicKey, STREAM);
  assertEquals(
    await v2.manifest(manifestPayload(await otherStream.sign(dataFrames(0, 2))).payload),
    "forged",
  );
  assertEquals(await verifier.manifest(new Uint8Array(5)), "forged");
  await assertRejects(() => StreamVerifier.create(new Uint8Array(31), STREAM), ManifestError);
});
