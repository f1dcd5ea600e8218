/**
 * Tests for the Wireshark dissector docs/wireshark/soundsock.lua, run through tshark:
 *
 * 1. a live capture on the loopback interface of a real UDP exchange between two Deno sockets
 *    (REQUEST, ACCEPT, STREAM_INFO, DATA 0..N-1 with SONG_START, HEARTBEAT, one DATA whose CRC
 *    was corrupted, END), decoded with the UDP heuristic (ephemeral ports, not 9000);
 * 2. a pcap built offline with text2pcap, for the default ports (UDP 9000, TCP 8443 with a
 *    frame split across TCP segments) and a datagram with a bad length.
 *
 * Both are ignored when tshark (and text2pcap, for the second) is not on PATH. The live capture
 * needs permission to capture on `lo`: root, or dumpcap with CAP_NET_RAW/CAP_NET_ADMIN.
 * CI: `apt-get install -y tshark` (Debian/Ubuntu; text2pcap ships with it).
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import {
  decodeDatagram,
  encodeControl,
  encodeFrame,
  FrameError,
  FrameFlag,
  FrameType,
  frameTypeName,
} from "../lib/wire/mod.ts";

const LUA_SCRIPT = new URL("../docs/wireshark/soundsock.lua", import.meta.url).pathname;

function commandWorks(cmd: string, args: string[]): boolean {
  try {
    return new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false; // not installed, or no --allow-run
  }
}
const HAVE_TSHARK = commandWorks("tshark", ["-v"]);
const HAVE_TEXT2PCAP = HAVE_TSHARK && commandWorks("text2pcap", ["-h"]);
/** Appended to a test name when it is ignored, so the output says why. */
const skipReason = (ok: boolean, tool: string) =>
  ok ? "" : ` [ignored: ${tool} not on PATH (or no --allow-run); apt-get install -y tshark]`;

/** One decoded soundsock frame as tshark reports it. */
interface Row {
  type: string;
  seq: number;
  songStart: boolean;
  crc: string;
  info: string;
  json: string;
}

const FIELDS = [
  "soundsock.type",
  "soundsock.seq",
  "soundsock.flags.song_start",
  "soundsock.crc.status",
  "_ws.col.Info",
  "soundsock.json",
];

/**
 * Runs tshark with the dissector over `pcap` and returns one row per packet: for each field,
 * its values in that packet (several soundsock frames can share a TCP segment).
 */
async function tsharkFields(pcap: string, extraArgs: string[] = []): Promise<string[][][]> {
  const out = await new Deno.Command("tshark", {
    args: [
      "-r",
      pcap,
      "-X",
      `lua_script:${LUA_SCRIPT}`,
      ...extraArgs,
      "-T",
      "fields",
      "-E",
      "separator=/t",
      "-E",
      "aggregator=/s", // several frames in one packet: values separated by a space
      ...FIELDS.flatMap((f) => ["-e", f]),
    ],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(15_000),
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert(out.success, `tshark -r failed: ${stderr}`);
  // A Lua error does not stop tshark; it only reports it. Fail loudly instead.
  assert(!/lua_script|Lua: Error|\.lua:\d+:/i.test(stderr), `dissector error: ${stderr}`);
  const text = new TextDecoder().decode(out.stdout).trimEnd();
  return text.split("\n").map((line) =>
    line.split("\t").map((value, i) =>
      // The Info column and JSON are single values that may contain spaces.
      i >= 4 ? [value] : value.split(" ")
    )
  );
}

/** Flattens tshark's per-packet field lists into one row per soundsock frame. */
function toRows(packets: string[][][]): Row[] {
  const rows: Row[] = [];
  for (const [types = [], seqs = [], songStarts = [], crcs = [], info = [], json = []] of packets) {
    types.forEach((type, i) => {
      rows.push({
        type: type === "" ? "" : frameTypeName(parseInt(type, 16)),
        seq: Number(seqs[i]),
        songStart: songStarts[i] === "1" || songStarts[i] === "True",
        crc: crcs[i] ?? "",
        info: info[0] ?? "",
        json: types.length === 1 ? json[0] ?? "" : "",
      });
    });
  }
  return rows;
}

const STREAM_ID = 0x1234abcd;
const DATA_FRAMES = 8;
const CORRUPTED_SEQ = 5;
const MP3_FRAME_US = 26_122; // 1152 samples at 44.1 kHz

Deno.test({
  name: "Wireshark dissector decodes types, sequence numbers and flags a bad CRC " +
    "in a live loopback capture" + skipReason(HAVE_TSHARK, "tshark"),
  ignore: !HAVE_TSHARK,
  sanitizeResources: true,
  sanitizeOps: true,
}, async () => {
  const server = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const client = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const serverAddr = server.addr as Deno.NetAddr;
  const clientAddr = client.addr as Deno.NetAddr;
  const dir = await Deno.makeTempDir({ prefix: "soundsock_wireshark_" });
  const pcap = `${dir}/capture.pcapng`;

  // What we send, in order, and what the dissector must report for each datagram.
  const expected: Omit<Row, "info" | "json">[] = [];
  const toServer = async (bytes: Uint8Array) => {
    await client.send(bytes, serverAddr);
    const [got] = await server.receive();
    assertEquals(got, bytes);
  };
  const toClient = async (bytes: Uint8Array) => {
    await server.send(bytes, clientAddr);
    const [got] = await client.receive();
    assertEquals(got, bytes);
    return got;
  };
  const request = { op: "song", song: "2" };
  const expect = (type: string, seq = 0, songStart = false, crc = "good") =>
    expected.push({ type, seq, songStart, crc });

  let tshark: Deno.ChildProcess | undefined;
  let drained: Promise<void> | undefined;
  let stderr = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const packetCount = 3 + DATA_FRAMES + 2; // REQUEST ACCEPT STREAM_INFO, DATA*, HEARTBEAT END
    tshark = new Deno.Command("tshark", {
      args: [
        "-i",
        "lo",
        "-f",
        `udp and host 127.0.0.1 and port ${serverAddr.port}`,
        "-c",
        String(packetCount), // exits by itself once everything is captured
        "-a",
        "duration:12", // upper bound if something is lost
        "-w",
        pcap,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const capturing = Promise.withResolvers<void>();
    capturing.promise.catch(() => {}); // a late rejection after a timeout is not unhandled
    drained = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of tshark.stderr) {
        stderr += decoder.decode(chunk, { stream: true });
        if (stderr.includes("Capturing on")) capturing.resolve();
      }
      capturing.reject(new Error(`tshark ended before capturing: ${stderr}`));
    })();
    await Promise.race([
      capturing.promise,
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`tshark did not start capturing within 8 s: ${stderr}`)),
          8_000,
        );
      }),
    ]);
    clearTimeout(timer);
    await new Promise((resolve) => setTimeout(resolve, 200)); // let dumpcap settle

    // A song on demand, as in docs/PROTOCOL.md §5.1.
    await toServer(encodeControl(FrameType.REQUEST, request));
    expect("REQUEST");
    await toClient(encodeControl(FrameType.ACCEPT, { op: "song", maxPayload: 1200 }, {
      streamId: STREAM_ID,
    }));
    expect("ACCEPT");
    await toClient(encodeControl(FrameType.STREAM_INFO, {
      title: "test.mp3",
      codec: "mp3",
      sampleRate: 44100,
      channels: 2,
      durationMs: Math.round(DATA_FRAMES * MP3_FRAME_US / 1000),
      packets: DATA_FRAMES,
    }, { streamId: STREAM_ID }));
    expect("STREAM_INFO");
    let bytes = 0;
    for (let seq = 0; seq < DATA_FRAMES; seq++) {
      const payload = crypto.getRandomValues(new Uint8Array(417));
      const frame = encodeFrame({
        type: FrameType.DATA,
        streamId: STREAM_ID,
        sequence: seq,
        timestamp: seq * MP3_FRAME_US,
        flags: seq === 0 ? FrameFlag.SONG_START : 0,
        payload,
      });
      bytes += payload.length;
      if (seq === CORRUPTED_SEQ) {
        frame[frame.length - 1]! ^= 0x5a; // damaged in transit: the CRC no longer matches
        const got = await toClient(frame);
        let code = "";
        try {
          decodeDatagram(got);
        } catch (error) {
          if (error instanceof FrameError) code = error.code;
        }
        assertEquals(code, "crc", "the receiver must reject the corrupted frame by its CRC");
        expect("DATA", seq, false, "bad");
      } else {
        assertEquals(decodeDatagram(await toClient(frame)).sequence, seq);
        expect("DATA", seq, seq === 0);
      }
      if (seq === 3) {
        await toServer(encodeFrame({ type: FrameType.HEARTBEAT, streamId: STREAM_ID }));
        expect("HEARTBEAT");
      }
    }
    await toClient(encodeControl(FrameType.END, { packets: DATA_FRAMES, bytes }, {
      streamId: STREAM_ID,
    }));
    expect("END");
    assertEquals(expected.length, packetCount);

    const status = await Promise.race([
      tshark.status,
      new Promise<null>((resolve) => {
        timer = setTimeout(() => resolve(null), 10_000);
      }),
    ]);
    clearTimeout(timer);
    assert(
      status?.success,
      `capture did not finish cleanly (${JSON.stringify(status)}): ${stderr}`,
    );

    // Ephemeral ports: the frames are found by the UDP heuristic (magic, version, length).
    const rows = toRows(await tsharkFields(pcap, ["-o", "udp.try_heuristic_first:TRUE"]));
    assertEquals(
      rows.map(({ type, seq, songStart, crc }) => ({ type, seq, songStart, crc })),
      expected,
    );
    assertEquals(rows[0]!.json, JSON.stringify(request));
    assertEquals(rows[0]!.info, `REQUEST ${JSON.stringify(request)}`);
    const data = rows.filter((r) => r.type === "DATA");
    assertEquals(data.map((r) => r.seq), [...Array(DATA_FRAMES).keys()]);
    assertMatch(data[2]!.info, /^DATA seq=2 ts=0\.052s stream=0x1234abcd len=417$/);
    assertMatch(data[CORRUPTED_SEQ]!.info, /\[BAD CRC\]$/);
  } finally {
    clearTimeout(timer);
    if (tshark) {
      try {
        tshark.kill("SIGTERM");
      } catch {
        // already exited
      }
      await tshark.status;
      await drained?.catch(() => {});
    }
    server.close();
    client.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/** text2pcap input: one packet per hex dump, offsets restarting at 0. */
function hexDump(packets: Uint8Array[]): string {
  let out = "";
  for (const packet of packets) {
    for (let i = 0; i < packet.length; i += 16) {
      const line = [...packet.subarray(i, i + 16)].map((b) => b.toString(16).padStart(2, "0"));
      out += `${i.toString(16).padStart(6, "0")} ${line.join(" ")}\n`;
    }
    out += "\n";
  }
  return out;
}

async function text2pcap(dir: string, name: string, transport: string, packets: Uint8Array[]) {
  const txt = `${dir}/${name}.txt`;
  const pcap = `${dir}/${name}.pcap`;
  await Deno.writeTextFile(txt, hexDump(packets));
  const out = await new Deno.Command("text2pcap", {
    args: ["-q", transport, txt, pcap],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(10_000),
  }).output();
  assert(out.success, `text2pcap failed: ${new TextDecoder().decode(out.stderr)}`);
  return pcap;
}

Deno.test({
  name: "Wireshark dissector decodes the default UDP 9000 and TCP 8443 ports, " +
    "reassembles TCP frames and flags a bad length" +
    skipReason(HAVE_TEXT2PCAP, "tshark/text2pcap"),
  ignore: !HAVE_TEXT2PCAP,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "soundsock_wireshark_" });
  try {
    const frames = [
      encodeControl(FrameType.REQUEST, { op: "radio" }),
      encodeControl(FrameType.ACCEPT, { op: "radio", maxPayload: 1200, heartbeatMs: 2000 }, {
        streamId: 7,
      }),
      encodeFrame({
        type: FrameType.DATA,
        streamId: 7,
        sequence: 41,
        timestamp: 1_097_000,
        flags: FrameFlag.SONG_START,
        payload: new Uint8Array(1012),
      }),
      encodeFrame({ type: FrameType.HEARTBEAT, streamId: 7 }),
      encodeFrame({ type: FrameType.DATA, streamId: 7, sequence: 42, payload: new Uint8Array(4) }),
    ];

    // UDP, one frame per datagram, on the default port; then a datagram with 2 stray bytes.
    const trailing = new Uint8Array([...encodeFrame({ type: FrameType.BYE, streamId: 7 }), 1, 2]);
    const udp = await text2pcap(dir, "udp", "-u40000,9000", [...frames, trailing]);
    const udpRows = toRows(await tsharkFields(udp));
    assertEquals(udpRows.map((r) => `${r.type}:${r.seq}:${r.crc}`), [
      "REQUEST:0:good",
      "ACCEPT:0:good",
      "DATA:41:good",
      "HEARTBEAT:0:good",
      "DATA:42:good",
      "BYE:0:good",
    ]);
    assertEquals(udpRows[2]!.info, "DATA seq=41 ts=1.097s stream=0x00000007 len=1012 SONG_START");
    assert(udpRows[2]!.songStart);
    assertEquals(udpRows[3]!.info, "HEARTBEAT stream=0x00000007");
    assertMatch(udpRows[5]!.info, /^BYE stream=0x00000007 \[BAD LENGTH\]$/);

    // TCP (plaintext) on the default port: the stream cut mid-frame into two segments.
    const stream = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
    frames.reduce((offset, f) => (stream.set(f, offset), offset + f.length), 0);
    const tcp = await text2pcap(dir, "tcp", "-T40000,8443", [
      stream.subarray(0, 700),
      stream.subarray(700),
    ]);
    const tcpRows = toRows(await tsharkFields(tcp));
    assertEquals(tcpRows.map((r) => `${r.type}:${r.seq}:${r.crc}`), [
      "REQUEST:0:good",
      "ACCEPT:0:good",
      "DATA:41:good",
      "HEARTBEAT:0:good",
      "DATA:42:good",
    ]);
    assertEquals(
      tcpRows[4]!.info,
      "DATA seq=41 ts=1.097s stream=0x00000007 len=1012 SONG_START | " +
        "HEARTBEAT stream=0x00000007 | DATA seq=42 ts=0.000s stream=0x00000007 len=4",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
