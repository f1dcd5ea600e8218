/** Keeps docs/PROTOCOL.md exact: every example frame in it must decode to what it says. */
import { assert, assertEquals } from "@std/assert";
import { decodeDatagram, FrameType, frameTypeName, HEADER_SIZE, VERSION } from "./frame.ts";
import { readAccept, readChallenge, readSessionControl, readUdpRequest } from "./messages.ts";
import { FrameDecoder } from "./stream_decoder.ts";
import { splitOpusPayload } from "../station/encoder.ts";
import { OpusDecoder, opusPacketSamples } from "../codec/mod.ts";

const doc = await Deno.readTextFile(new URL("../../docs/PROTOCOL.md", import.meta.url));
const examples = [
  ...doc.matchAll(/```soundsock-frame\n([0-9a-f \n]+)```\s+decodes to\s+`([^`]+)`/g),
].map(([, hex, json]) => ({
  bytes: Uint8Array.from(hex!.trim().split(/\s+/).map((h) => parseInt(h, 16))),
  expected: JSON.parse(json!),
}));

/** Bit-at-a-time CRC-32C straight from the definition, independent of the table version. */
function referenceCrc32c(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const b of bytes) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

Deno.test("PROTOCOL.md has example frames", () => {
  assert(examples.length >= 3, `found ${examples.length} examples`);
});

Deno.test("every example frame in PROTOCOL.md decodes to the fields the document states", () => {
  for (const { bytes, expected } of examples) {
    const frame = decodeDatagram(bytes);
    const payload = expected.payload.startsWith("hex:")
      ? [...frame.payload].map((b) => b.toString(16).padStart(2, "0")).join("")
      : new TextDecoder().decode(frame.payload);
    assertEquals({
      type: frameTypeName(frame.type),
      streamId: frame.streamId,
      sequence: frame.sequence,
      timestamp: frame.timestamp,
      flags: frame.flags,
      payload: expected.payload.startsWith("hex:") ? `hex:${payload}` : payload,
    }, expected);
    assertEquals(new FrameDecoder().push(bytes).length, 1);
    // The documented CRC definition (bytes 0–27, then the payload) gives the stored CRC.
    const covered = Uint8Array.from([...bytes.subarray(0, 28), ...bytes.subarray(HEADER_SIZE)]);
    assertEquals(referenceCrc32c(covered), new DataView(bytes.buffer).getUint32(28));
  }
});

Deno.test("the document's title and every example carry the version byte of lib/wire/frame.ts", () => {
  assert(doc.startsWith(`# soundsock/${VERSION} — wire protocol`));
  for (const { bytes } of examples) assertEquals(bytes[2], VERSION);
});

Deno.test("the UDP handshake examples (§5.0) parse with the message readers and obey the 3x rule", () => {
  const frames = examples.map(({ bytes }) => ({ bytes, frame: decodeDatagram(bytes) }));
  const of = (type: FrameType) => frames.filter((f) => f.frame.type === type);
  const challenge = of(FrameType.CHALLENGE)[0]!;
  const { cookie } = readChallenge(challenge.frame);
  const requests = of(FrameType.REQUEST).map((f) => ({ ...f, ...readUdpRequest(f.frame) }));
  const first = requests.find((r) => r.request.op === "radio" && r.cookie === undefined)!;
  const echo = requests.find((r) => r.request.op === "radio" && r.cookie !== undefined)!;
  assertEquals(echo.cookie, cookie);
  assertEquals(echo.request, first.request);
  // Before validation: at most 3x the bytes received (RFC 9000 §8.1).
  assert(challenge.bytes.length <= 3 * first.bytes.length);
  const { token } = readAccept(of(FrameType.ACCEPT)[0]!.frame);
  assert(token);
  const controls = [...of(FrameType.HEARTBEAT), ...of(FrameType.BYE)];
  assert(controls.length >= 3);
  for (const c of controls) assertEquals(readSessionControl(c.frame).token, token);
});

Deno.test("the Opus radio DATA example (§4, §7) splits into 20 ms Opus packets that decode", async () => {
  const frame = examples.map(({ bytes }) => decodeDatagram(bytes)).find((f) =>
    f.type === FrameType.DATA && f.timestamp === 100_800_000
  );
  if (!frame) throw new Error("no Opus DATA example in PROTOCOL.md");
  const packets = splitOpusPayload(frame.payload);
  assertEquals(packets.length, 2);
  using dec = await OpusDecoder.create({ channels: 2 });
  for (const p of packets) {
    assertEquals(opusPacketSamples(p), 960);
    const pcm = dec.decode(p);
    assertEquals(pcm.length, 960 * 2);
    assert(pcm.every((v) => v === 0));
  }
  // The payload layout is exactly [u16 BE length][packet]… with nothing left over.
  assertEquals(packets.reduce((n, p) => n + 2 + p.length, 0), frame.payload.length);
});
