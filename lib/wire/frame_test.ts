import { assertEquals, assertThrows } from "@std/assert";
import fc from "fast-check";
import { crc32c } from "./crc32c.ts";
import {
  decodeDatagram,
  encodeFrame,
  type Frame,
  FrameError,
  FrameType,
  HEADER_SIZE,
  MAGIC,
  UDP_MAX_PAYLOAD,
} from "./frame.ts";
import { FrameDecoder, readFrames } from "./stream_decoder.ts";

const ascii = (s: string) => new TextEncoder().encode(s);

Deno.test("crc32c matches the RFC 3720 check value and known vectors", () => {
  assertEquals(crc32c(ascii("123456789")), 0xe3069283);
  assertEquals(crc32c(new Uint8Array(32)), 0x8a9136aa); // RFC 3720 B.4: 32 bytes of zeros
  assertEquals(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43); // 32 bytes of 0xff
  // Feeding in pieces gives the same result as one call.
  const data = crypto.getRandomValues(new Uint8Array(1000));
  assertEquals(crc32c(data.subarray(300), crc32c(data.subarray(0, 300))), crc32c(data));
});

const sample: Frame = {
  type: FrameType.DATA,
  flags: 1,
  streamId: 0xdeadbeef,
  sequence: 4_000_000_000,
  timestamp: 2 ** 40 + 123,
  payload: ascii("hello frames"),
};

Deno.test("encodeFrame and decodeDatagram round-trip every field", () => {
  const bytes = encodeFrame(sample);
  assertEquals(bytes.length, HEADER_SIZE + sample.payload.length);
  assertEquals(new DataView(bytes.buffer).getUint16(0), MAGIC);
  assertEquals(decodeDatagram(bytes), sample);
});

const frameArb = fc.record({
  type: fc.constantFrom(...Object.values(FrameType)),
  flags: fc.integer({ min: 0, max: 0xffff }),
  streamId: fc.nat({ max: 0xffffffff }),
  sequence: fc.nat({ max: 0xffffffff }),
  timestamp: fc.maxSafeNat(),
  payload: fc.uint8Array({ maxLength: UDP_MAX_PAYLOAD }),
});

Deno.test("property: any valid frame round-trips through datagram and stream decoders", () => {
  fc.assert(fc.property(frameArb, (frame) => {
    const bytes = encodeFrame(frame);
    assertEquals(decodeDatagram(bytes), frame);
    assertEquals(new FrameDecoder().push(bytes), [frame]);
  }));
});

function expectFrameError(fn: () => unknown, code: FrameError["code"]) {
  const err = assertThrows(fn, FrameError);
  assertEquals((err as FrameError).code, code);
}

Deno.test("hostile: decodeDatagram names each kind of bad input with a typed error", () => {
  const good = encodeFrame(sample);
  const mutate = (offset: number, value: number) => {
    const b = good.slice();
    b[offset] = value;
    return b;
  };
  expectFrameError(() => decodeDatagram(mutate(0, 0x00)), "magic");
  expectFrameError(() => decodeDatagram(mutate(2, 1)), "version"); // soundsock/1 frames too
  expectFrameError(() => decodeDatagram(mutate(2, 3)), "version");
  expectFrameError(() => decodeDatagram(mutate(3, 0x7f)), "type");
  expectFrameError(() => decodeDatagram(mutate(7, 1)), "reserved");
  expectFrameError(() => decodeDatagram(good.subarray(0, 10)), "truncated");
  expectFrameError(() => decodeDatagram(good.subarray(0, good.length - 1)), "truncated");
  expectFrameError(() => decodeDatagram(Uint8Array.of(...good, 0)), "trailing");
  expectFrameError(() => decodeDatagram(mutate(HEADER_SIZE, 0x21)), "crc");
  expectFrameError(() => decodeDatagram(mutate(12, 0x00)), "crc"); // header bits are covered too
  // A length field that lies far beyond the limit is refused from the header alone.
  const liar = good.slice();
  new DataView(liar.buffer).setUint32(24, 70_000_000);
  const err = assertThrows(() => decodeDatagram(liar), FrameError);
  assertEquals(err.message, `Cannot decode frame: length 70000000 exceeds ${UDP_MAX_PAYLOAD}`);
  // The datagram limit is the transport's: a 1201-byte payload needs a stream.
  const big = encodeFrame({ type: FrameType.DATA, payload: new Uint8Array(1201) });
  expectFrameError(() => decodeDatagram(big), "too_large");
  assertEquals(decodeDatagram(big, { maxPayload: 2000 }).payload.length, 1201);
});

Deno.test("hostile: random bytes only ever yield FrameError, in both decoders", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) => {
      try {
        decodeDatagram(bytes);
      } catch (e) {
        if (!(e instanceof FrameError)) throw e;
      }
      try {
        const d = new FrameDecoder({ maxPayload: 4096 });
        d.push(bytes);
        d.end();
      } catch (e) {
        if (!(e instanceof FrameError)) throw e;
      }
    }),
    { numRuns: 2000 },
  );
});

Deno.test("hostile: mutated valid frames are caught or decode to exactly what was sent", () => {
  fc.assert(
    fc.property(
      frameArb,
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), {
        minLength: 1,
        maxLength: 4,
      }),
      (frame, flips) => {
        const bytes = encodeFrame(frame);
        for (const [pos, xor] of flips) bytes[pos % bytes.length]! ^= xor;
        try {
          decodeDatagram(bytes);
          // A mutation that survives must have cancelled itself out (same byte flipped back).
          assertEquals(decodeDatagram(bytes), frame);
        } catch (e) {
          if (!(e instanceof FrameError)) throw e;
        }
      },
    ),
    { numRuns: 2000 },
  );
});

Deno.test("FrameDecoder handles frames split across reads and coalesced in one read", () => {
  fc.assert(fc.property(
    fc.array(frameArb, { minLength: 1, maxLength: 8 }),
    fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 30 }),
    (frames, cuts) => {
      const all = new Uint8Array(frames.reduce((n, f) => n + HEADER_SIZE + f.payload.length, 0));
      let at = 0;
      for (const f of frames) {
        const b = encodeFrame(f);
        all.set(b, at);
        at += b.length;
      }
      const decoder = new FrameDecoder();
      const out: Frame[] = [];
      let pos = 0;
      for (let i = 0; pos < all.length; i++) {
        const size = cuts[i % cuts.length]!;
        out.push(...decoder.push(all.subarray(pos, pos + size)));
        pos += size;
      }
      decoder.end();
      assertEquals(out, frames);
    },
  ));
});

Deno.test("hostile: FrameDecoder refuses a lying length before buffering any payload", () => {
  const header = encodeFrame({ type: FrameType.DATA, payload: new Uint8Array(0) });
  new DataView(header.buffer).setUint32(24, 0xffffffff);
  const decoder = new FrameDecoder();
  const err = assertThrows(() => decoder.push(header), FrameError);
  assertEquals(err.message, "Cannot decode frame: length 4294967295 exceeds 1048544");
});

Deno.test("hostile: FrameDecoder.end reports a stream cut inside a frame", () => {
  const bytes = encodeFrame(sample);
  const decoder = new FrameDecoder();
  assertEquals(decoder.push(bytes.subarray(0, 40)), []);
  assertEquals(decoder.pendingBytes, 40);
  expectFrameError(() => decoder.end(), "truncated");
});

Deno.test("readFrames yields frames from a reader that returns one byte at a time", async () => {
  const frames = [sample, { ...sample, type: FrameType.END, payload: ascii("{}") }];
  const bytes = Uint8Array.from([...encodeFrame(frames[0]!), ...encodeFrame(frames[1]!)]);
  let pos = 0;
  const reader = {
    read(p: Uint8Array) {
      if (pos >= bytes.length) return Promise.resolve(null);
      p[0] = bytes[pos++]!;
      return Promise.resolve(1);
    },
  };
  const got: Frame[] = [];
  for await (const f of readFrames(reader)) got.push(f);
  assertEquals(got, frames);
});
