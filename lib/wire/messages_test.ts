import { assertEquals, assertThrows } from "@std/assert";
import fc from "fast-check";
import { decodeDatagram, encodeFrame, FrameType } from "./frame.ts";
import {
  encodeControl,
  MAX_CONTROL_PAYLOAD,
  MessageError,
  readNowPlaying,
  readPlayResult,
  readQueue,
  readRequest,
  readSessionControl,
  readSongList,
  readStreamInfo,
} from "./messages.ts";

const frameOf = (type: FrameType, payload: string | Uint8Array) =>
  decodeDatagram(
    encodeFrame({
      type,
      payload: typeof payload === "string" ? new TextEncoder().encode(payload) : payload,
    }),
    { maxPayload: MAX_CONTROL_PAYLOAD + 10 },
  );

Deno.test("control messages round-trip through encodeControl and their readers", () => {
  const req = { op: "get", song: "x.mp3", offset: 10 } as const;
  assertEquals(readRequest(decodeDatagram(encodeControl(FrameType.REQUEST, req))), req);
  const info = {
    title: "a.mp3",
    codec: "mp3",
    sampleRate: 44100,
    channels: 2,
    durationMs: 1000,
    frames: 44100,
    skip: 1105,
    sha256: "a".repeat(64),
    live: true,
  } as const;
  assertEquals(readStreamInfo(decodeDatagram(encodeControl(FrameType.STREAM_INFO, info))), info);
  const list = {
    total: 1,
    offset: 0,
    songs: [{ index: 1, title: "a.mp3", codec: "mp3", durationMs: 5, size: 9 }],
  };
  assertEquals(readSongList(decodeDatagram(encodeControl(FrameType.SONG_LIST, list))), list);
  const q = { queue: [{ title: "b.wav", durationMs: 2 }] };
  assertEquals(readQueue(decodeDatagram(encodeControl(FrameType.QUEUE, q))), q);
  const pr = { result: "not_found", message: "Song does not exist" } as const;
  assertEquals(readPlayResult(decodeDatagram(encodeControl(FrameType.PLAY_RESULT, pr))), pr);
  const np = { title: "c.flac", durationMs: 3, positionMs: 1, source: "random" } as const;
  assertEquals(readNowPlaying(decodeDatagram(encodeControl(FrameType.NOW_PLAYING, np))), np);
});

Deno.test("hostile: control payloads with wrong types, bounds or encodings are MessageErrors", () => {
  const bad: [FrameType, string | Uint8Array, string][] = [
    [FrameType.REQUEST, "not json", "REQUEST payload is not UTF-8 JSON"],
    [FrameType.REQUEST, Uint8Array.of(0xff, 0xfe), "REQUEST payload is not UTF-8 JSON"],
    [FrameType.REQUEST, "[1,2]", "REQUEST payload is not a JSON object"],
    [FrameType.REQUEST, '{"op":"format_disk"}', 'REQUEST: "op" must be one of'],
    [FrameType.REQUEST, '{"op":"song"}', 'REQUEST: "song" must be a string of 1..255 characters'],
    [FrameType.REQUEST, `{"op":"song","song":"${"x".repeat(256)}"}`, '"song" must be a string'],
    [FrameType.REQUEST, '{"op":"get","song":"a","offset":-1}', '"offset" must be an integer'],
    [FrameType.REQUEST, '{"op":"list","offset":1.5}', '"offset" must be an integer'],
    [
      FrameType.STREAM_INFO,
      '{"title":"a","codec":"ogg","sampleRate":1,"channels":1,"durationMs":1}',
      '"codec" must be one of',
    ],
    [
      FrameType.STREAM_INFO,
      '{"title":"a","codec":"mp3","sampleRate":0,"channels":1,"durationMs":1}',
      '"sampleRate" must be an integer in 8000..192000',
    ],
    // A lying server's STREAM_INFO: formats no file has, sizes past 2^53 − 1, NaN smuggled in.
    [
      FrameType.STREAM_INFO,
      '{"title":"a","codec":"pcm_s16le","sampleRate":768000,"channels":2,"durationMs":1}',
      '"sampleRate" must be an integer in 8000..192000',
    ],
    [
      FrameType.STREAM_INFO,
      '{"title":"a","codec":"pcm_s16le","sampleRate":44100,"channels":32,"durationMs":1}',
      '"channels" must be an integer in 1..8',
    ],
    [
      FrameType.STREAM_INFO,
      '{"title":"a","codec":"pcm_s16le","sampleRate":44100,"channels":0,"durationMs":1}',
      '"channels" must be an integer in 1..8',
    ],
    [
      FrameType.STREAM_INFO,
      '{"title":"a","codec":"wav","sampleRate":8000,"channels":1,"durationMs":1,"size":9007199254740992}',
      '"size" must be an integer in 0..9007199254740991',
    ],
    [
      FrameType.STREAM_INFO,
      '{"title":"a","codec":"wav","sampleRate":"NaN","channels":1,"durationMs":1}',
      '"sampleRate" must be an integer',
    ],
    [
      FrameType.STREAM_INFO,
      '{"title":"a","codec":"wav","sampleRate":8000,"channels":1,"durationMs":1e400}',
      '"durationMs" must be an integer',
    ],
    [
      FrameType.STREAM_INFO,
      '{"title":"a","codec":"wav","sampleRate":8000,"channels":1,"durationMs":1,"size":5,"offset":6}',
      '"offset" is beyond "size"',
    ],
    [
      FrameType.STREAM_INFO,
      '{"title":"a","codec":"mp3","sampleRate":8000,"channels":1,"durationMs":1,"sha256":"zz"}',
      '"sha256" must be 64',
    ],
    [FrameType.SONG_LIST, '{"total":1,"offset":0,"songs":{}}', '"songs" must be an array'],
    [FrameType.REQUEST, new Uint8Array(MAX_CONTROL_PAYLOAD + 1), "is too large"],
  ];
  const readers: Record<number, (f: ReturnType<typeof frameOf>) => unknown> = {
    [FrameType.REQUEST]: readRequest,
    [FrameType.STREAM_INFO]: readStreamInfo,
    [FrameType.SONG_LIST]: readSongList,
  };
  for (const [type, payload, message] of bad) {
    const err = assertThrows(() => readers[type]!(frameOf(type, payload)), MessageError);
    if (!err.message.includes(message)) throw new Error(`"${err.message}" lacks "${message}"`);
  }
});

Deno.test("hostile: arbitrary JSON values never crash readRequest", () => {
  fc.assert(
    fc.property(fc.jsonValue(), (value) => {
      try {
        readRequest(frameOf(FrameType.REQUEST, JSON.stringify(value) ?? "null"));
      } catch (e) {
        if (!(e instanceof MessageError)) throw e;
      }
    }),
    { numRuns: 1000 },
  );
});

Deno.test("hostile: a BYE reason is a string of at most 1024 characters", () => {
  const token = "0123456789abcdef0123456789abcdef";
  const bye = (reason: unknown) => frameOf(FrameType.BYE, JSON.stringify({ token, reason }));
  assertEquals(readSessionControl(bye("server stopping")).reason, "server stopping");
  assertThrows(() => readSessionControl(bye("x".repeat(1025))), MessageError, "1..1024");
  assertThrows(() => readSessionControl(bye(7)), MessageError, "reason");
  assertEquals(
    readSessionControl(frameOf(FrameType.BYE, JSON.stringify({ token }))).reason,
    undefined,
  );
});
