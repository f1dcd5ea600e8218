/**
 * `file-send` — send files and folders to another machine, authorized by a three-word code,
 * verified by SHA-256, resumable.
 *
 * @module
 */

// The lib/cli modules one by one: lib/cli/mod.ts also brings the audio stack, which costs
// start-up time (the code should be on screen fast) and file-send does not play anything.
import { startCommand } from "../lib/cli/command.ts";
import { ExitCode, UsageError } from "../lib/cli/errors.ts";
import { EventLog } from "../lib/cli/event_log.ts";
import { type CommandSpec, resolveUserPath } from "../lib/cli/flags.ts";
import { runMain } from "../lib/cli/run.ts";
import { didYouMean } from "../lib/cli/suggest.ts";
import { escapePeerText } from "../lib/cli/output.ts";
import { parseHostPort } from "../lib/net/host_port.ts";
// Only the light modules load before the code is shown: the receiver and sender (TLS, SPAKE2
// on @noble/curves) are imported once it is on screen, while openssl makes the certificate.
import { CodeFormatError, generateCode, normalizeCode } from "../lib/transfer/code.ts";
import { createEphemeralCert } from "../lib/transfer/cert.ts";
import { checkReceiveDir, DEFAULT_FILE_SEND_PORT } from "../lib/transfer/receive_dir.ts";
import { describeOffer, formatBytes, ProgressMeter } from "../lib/transfer/progress.ts";
import type { OnExists } from "../lib/transfer/receiver.ts";

/** Command-line declaration. */
export const SPEC = {
  name: "file-send",
  summary: "Send files and folders to another machine, authorized by a one-time code.",
  usage: [
    "receive [--dir DIR] [--code CODE] [options]",
    "send PATH... HOST[:PORT] --code CODE [options]",
  ],
  positionals: { min: 0, max: 1000 },
  flags: {
    dir: {
      type: "string",
      default: ".",
      valueName: "DIR",
      path: true,
      description: "receive: the folder files are saved into.",
    },
    host: {
      type: "string",
      default: "0.0.0.0",
      valueName: "H",
      description: "receive: the address to listen on.",
    },
    port: {
      type: "number",
      default: DEFAULT_FILE_SEND_PORT,
      min: 0,
      max: 65535,
      valueName: "P",
      description: "receive: the TCP port (0: any free one).",
    },
    code: {
      type: "string",
      valueName: "CODE",
      description: "The three-word code (receive: choose it instead of a random one).",
    },
    "on-exists": {
      type: "string",
      default: "rename",
      choices: ["rename", "overwrite", "skip", "ask"],
      valueName: "WHAT",
      description: "receive: a file of that name exists — rename to 'name (1).ext', overwrite, " +
        "skip it when identical (same size and SHA-256; else rename), or ask.",
    },
    "max-size": {
      type: "number",
      min: 0,
      valueName: "BYTES",
      description: "receive: refuse offers larger than this.",
    },
    once: {
      type: "boolean",
      description: "receive: stop after the first connection, even a failed one.",
    },
    symlinks: {
      type: "string",
      default: "skip",
      choices: ["skip", "follow", "preserve"],
      valueName: "HOW",
      description: "send: symbolic links are skipped with a warning, followed, or preserved " +
        "(sent as links; the receiver makes a link only when its target, resolved from the " +
        "link's folder, stays inside its DIR, and warns about any other).",
    },
    yes: {
      type: "boolean",
      short: "y",
      description: "receive: accept without asking (non-interactive runs always accept).",
    },
    json: {
      type: "boolean",
      description:
        "Print one JSON summary (files with sha256 and root, bytes, bytesRead, seconds, MB/s) " +
        "on stdout.",
    },
    timeout: {
      type: "number",
      default: 10,
      min: 0.1,
      max: 3600,
      integer: false,
      valueName: "S",
      description: "Time allowed to connect and for each answer.",
    },
  },
  examples: [
    ["deno task file-send receive --dir ~/Downloads", "prints an address and a code"],
    [
      "deno task file-send send photos/ notes.txt 192.168.1.20 --code velvet-ocean-trip",
      "send a folder and a file",
    ],
    ["deno task file-send send big.iso 192.168.1.20:9009 --code velv-ocea-trip", "resumes"],
    ["deno task file-send receive --code velvet-ocean-trip --once --yes --json", "for scripts"],
  ],
  notes: [
    "The code authenticates both machines: a wrong code, or anything in the middle of the " +
    "connection, ends it before a name or a byte of content is sent. After 5 wrong codes the " +
    "code is burned.",
    "Files arrive as NAME.part and are renamed into place only when their SHA-256 matches. " +
    "Sending the same files again after an interruption sends, and reads from disk on both " +
    "sides, only the missing 4 MiB chunks (the sender keeps a small cache of its chunk hashes " +
    "in ~/.cache/soundsock/file-send, deleted once the files are saved).",
    "Exit 1: failed (wrong code, lost connection, hash mismatch). Exit 3: the offer was refused.",
  ],
} as const satisfies CommandSpec;

/** Entry point. */
export async function main(args: string[], signal: AbortSignal): Promise<number> {
  const { flags, positionals, out, helped } = startCommand(SPEC, args);
  if (helped) return ExitCode.OK;
  const [command, ...rest] = positionals;
  if (command === undefined) throw new UsageError("missing command (receive or send)");
  using log = await EventLog.openOptional(flags.log);
  const timeoutMs = flags.timeout * 1000;
  const draw = (line: string) => out.status(line);
  const code = flags.code === undefined ? undefined : checkCode(flags.code);

  if (command === "receive") {
    if (rest.length > 0) throw new UsageError(`receive takes no arguments, not "${rest[0]}"`);
    const interactive = Deno.stdin.isTerminal() && !flags.yes;
    const meter = new ProgressMeter(draw);
    await checkReceiveDir(flags.dir);
    const certificate = createEphemeralCert();
    certificate.catch(() => {}); // awaited by receiveFiles
    const shownCode = code ?? generateCode();
    // With --json, stdout carries only the summary: these lines go to stderr.
    flags.json ? out.info(`Code: ${shownCode}`) : out.stdout(`Code: ${shownCode}`);
    const { receiveFiles } = await import("../lib/transfer/receiver.ts");
    const summary = await receiveFiles({
      dir: flags.dir,
      code: shownCode,
      certificate,
      hostname: flags.host,
      port: flags.port,
      onExists: flags["on-exists"] as OnExists,
      ...(flags["max-size"] !== undefined ? { maxSize: flags["max-size"] } : {}),
      once: flags.once,
      timeoutMs,
      signal,
      onListening: ({ hostname, port, code }) => {
        log.event("listening", { hostname, port });
        const lines = [
          `Listening on ${hostname}:${port}, saving into ${flags.dir}`,
          `On the other machine: deno task file-send send PATH... THIS-HOST:${port} --code ${code}`,
        ];
        for (const line of lines) flags.json ? out.info(line) : out.stdout(line);
      },
      confirmOffer: (offer, from) => {
        out.info(`Offer from ${from}: ${describeOffer(offer)} → ${flags.dir}`);
        for (const e of offer.entries.slice(0, 20)) {
          out.info(
            `  ${
              e.type === "dir"
                ? "   folder"
                : e.type === "symlink"
                ? "     link"
                : formatBytes(e.size).padStart(9)
            }  ${escapePeerText(e.path)}` +
              (e.type === "symlink" ? ` → ${escapePeerText(e.target ?? "")}` : ""),
          );
        }
        if (offer.entries.length > 20) out.info(`  … and ${offer.entries.length - 20} more`);
        if (!interactive) return Promise.resolve(true);
        const answer = prompt("Accept? [Y/n]") ?? "n";
        return Promise.resolve(!/^n/i.test(answer.trim()));
      },
      askExisting: (path) => {
        if (!Deno.stdin.isTerminal()) return Promise.resolve("rename");
        const a = prompt(`${escapePeerText(path)} exists: [r]ename, [o]verwrite or [s]kip?`) ?? "";
        return Promise.resolve(/^o/i.test(a) ? "overwrite" : /^s/i.test(a) ? "skip" : "rename");
      },
      onProgress: (done, total) => meter.update(done, total),
      onEvent: (event, fields) => {
        log.event(event, fields);
        if (event === "wrong_code") {
          out.warn(`wrong code from ${fields.from} (${fields.failures} of ${fields.maxFailures})`);
        } else if (event === "link_refused") {
          out.warn(String(fields.reason));
        } else if (event === "connection_lost") {
          out.warn(`connection from ${fields.from} ended: ${fields.error}; still waiting`);
        }
      },
    });
    out.clearStatus();
    const saved = summary.files.filter((f) => f.savedAs !== null);
    out.info(
      `Received ${saved.length} file${saved.length === 1 ? "" : "s"} (${
        formatBytes(summary.bytes)
      } over the network in ${summary.seconds.toFixed(1)} s), SHA-256 verified`,
    );
    for (const f of summary.files) {
      out.debug(`  ${f.savedAs ?? `${f.path} (skipped)`}  ${f.sha256 ?? f.root}`);
    }
    log.event("received", { files: summary.files.length, bytes: summary.bytes });
    if (flags.json) out.stdout(JSON.stringify(jsonSummary(summary.files, summary)));
    return ExitCode.OK;
  }

  if (command === "send") {
    if (rest.length < 2) throw new UsageError("send needs PATH... and HOST[:PORT]");
    if (!code) throw new UsageError("send needs --code CODE (the receiver prints it)");
    const target = rest.at(-1)!;
    let address;
    try {
      address = parseHostPort(target, DEFAULT_FILE_SEND_PORT);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
    const paths = rest.slice(0, -1).map((p) => resolveUserPath(p));
    const meter = new ProgressMeter(draw);
    const { sendFiles } = await import("../lib/transfer/sender.ts");
    const { defaultHashCacheDir } = await import("../lib/transfer/hash_cache.ts");
    const summary = await sendFiles(paths, address.hostname, address.port, {
      code,
      timeoutMs,
      signal,
      symlinks: flags.symlinks as "skip" | "follow" | "preserve",
      hashCacheDir: defaultHashCacheDir(),
      onOffer: (offer) => {
        for (const link of offer.skippedLinks) out.warn(`skipping symbolic link ${link}`);
        out.info(`Sending ${describeOffer(offer)} to ${address.hostname}:${address.port}`);
      },
      onProgress: (done, total) => meter.update(done, total),
    });
    out.clearStatus();
    for (const reason of summary.refusedLinks) out.warn(`the receiver: ${reason}`);
    const sent = summary.files.filter((f) => f.savedAs !== null).length;
    out.info(
      `Sent ${sent} file${sent === 1 ? "" : "s"} (${formatBytes(summary.bytes)} in ${
        summary.seconds.toFixed(1)
      } s; ${formatBytes(summary.totalBytes - summary.bytes)} were already there), SHA-256 ` +
        "verified by the receiver",
    );
    log.event("sent", { files: summary.files.length, bytes: summary.bytes });
    if (flags.json) out.stdout(JSON.stringify(jsonSummary(summary.files, summary)));
    return ExitCode.OK;
  }
  throw new UsageError(
    `unknown command "${command}"${didYouMean(command, ["receive", "send"])} — receive or send`,
  );
}

function checkCode(text: string): string {
  try {
    return normalizeCode(text);
  } catch (error) {
    if (error instanceof CodeFormatError) throw new UsageError(`--code: ${error.message}`);
    throw error;
  }
}

function jsonSummary(
  files: {
    path: string;
    savedAs: string | null;
    bytes: number;
    sha256: string | null;
    root: string;
  }[],
  summary: { bytes: number; bytesRead: number; seconds: number },
) {
  return {
    files: files.map((f) => ({
      path: f.path,
      savedAs: f.savedAs,
      bytes: f.bytes,
      sha256: f.sha256,
      root: f.root,
    })),
    bytes: summary.bytes,
    bytesRead: summary.bytesRead,
    seconds: Number(summary.seconds.toFixed(3)),
    mbPerSec: Number((summary.bytes / 1e6 / Math.max(summary.seconds, 1e-6)).toFixed(1)),
  };
}

if (import.meta.main) runMain(main, SPEC);
