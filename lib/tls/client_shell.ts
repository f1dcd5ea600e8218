/**
 * `tls-client shell`: the subcommands at a prompt, over one connection kept between commands.
 * On a terminal the line is edited with history ({@linkcode LineReader}); Ctrl+C stops the
 * command that runs (a `play`, a `radio`) and returns to the prompt, Ctrl+C on an empty line
 * or Ctrl+D leaves. Words are split like a shell's ({@linkcode splitWords}):
 * `play "my song"`.
 *
 * @module
 */

import { ExitCode } from "../cli/errors.ts";
import { resolveUserPath } from "../cli/flags.ts";
import { LineReader } from "../cli/line_reader.ts";
import { escapePeerText as peer } from "../cli/output.ts";
import { splitWords } from "../cli/shell_words.ts";
import type { TlsSongClient } from "./client.ts";
import {
  type ClientContext,
  listCommand,
  nowCommand,
  openClient,
  playCommand,
  queueCommand,
  radioCommand,
  requestCommand,
} from "./client_commands.ts";

/** One command of the shell. */
interface ShellCommand {
  /** Usage after the name, e.g. `SONG [FILE|DIR]`. */
  args: string;
  /** Fewest and most arguments. */
  min: number;
  max: number;
  /** One line for `help`. */
  summary: string;
  /** More for `help COMMAND`. */
  detail?: string;
  /** Runs it; without `run` the shell handles it (help, quit). */
  run?: (ctx: ClientContext, args: string[], client: TlsSongClient | undefined) => Promise<unknown>;
  /** Uses its own connection (not the shell's). */
  ownConnection?: boolean;
}

const COMMANDS: Record<string, ShellCommand> = {
  list: {
    args: "",
    min: 0,
    max: 0,
    summary: "numbered song list",
    run: (c, _, k) => listCommand(c, k),
  },
  play: {
    args: "SONG",
    min: 1,
    max: 1,
    summary: "download and play a song (name or number)",
    detail: 'Plays while it downloads; Ctrl+C stops it. A name with spaces: play "my song".',
    run: (c, [song], k) => playCommand(c, song!, {}, k),
  },
  get: {
    args: "SONG [FILE|DIR]",
    min: 1,
    max: 2,
    summary: "download and save (SHA-256 checked)",
    detail: "Saves into FILE, or into DIR under the song's name; default: the folder you " +
      "started tls-client in. Kept only if its SHA-256 matches.",
    run: (c, [song, file], k) =>
      playCommand(c, song!, { play: false, save: resolveUserPath(file ?? ".") }, k),
  },
  radio: {
    args: "",
    min: 0,
    max: 0,
    summary: "listen to the radio (Ctrl+C returns here)",
    detail: "Prints each new song; Ctrl+C stops listening and returns to the prompt.",
    run: (c) => radioCommand(c),
    ownConnection: true,
  },
  request: {
    args: "SONG",
    min: 1,
    max: 1,
    summary: "ask the radio to play a song",
    run: (c, [song], k) => requestCommand(c, song!, k),
  },
  queue: {
    args: "",
    min: 0,
    max: 0,
    summary: "the radio's request queue",
    run: (c, _, k) => queueCommand(c, k),
  },
  now: {
    args: "",
    min: 0,
    max: 0,
    summary: "what the radio plays now",
    run: (c, _, k) => nowCommand(c, k),
  },
  help: { args: "[COMMAND]", min: 0, max: 1, summary: "all commands, or one in detail" },
  quit: {
    args: "",
    min: 0,
    max: 0,
    summary: "leave (also Ctrl+D, or Ctrl+C on an empty line)",
  },
};

const ALIASES: Record<string, string> = { exit: "quit", "?": "help" };

function usageOf(name: string): string {
  const args = COMMANDS[name]!.args;
  return args ? `${name} ${args}` : name;
}

/** The shell's `help` text: every command, or `command` in detail. */
export function shellHelp(command?: string): string {
  if (command === undefined) {
    const rows = Object.keys(COMMANDS).map((name) =>
      `  ${usageOf(name).padEnd(21)}${COMMANDS[name]!.summary}`
    );
    return [
      "Commands:",
      ...rows,
      'Quote names with spaces: play "my song". Up/down: history. Ctrl+C stops a command.',
    ].join("\n");
  }
  const name = ALIASES[command] ?? command;
  const c = COMMANDS[name];
  if (!c) {
    throw new Error(`help: no command "${peer(command)}" (${Object.keys(COMMANDS).join(", ")})`);
  }
  return [`usage: ${usageOf(name)}`, `  ${c.summary}`, ...(c.detail ? [`  ${c.detail}`] : [])]
    .join("\n");
}

/** Options of {@linkcode shellCommand}. */
export interface ShellOptions {
  /** Edit lines on a terminal. @default {Deno.stdin.isTerminal()} */
  terminal?: boolean;
}

/** `shell`: reads commands from stdin, runs them over one connection; see the module doc. */
export async function shellCommand(
  ctx: ClientContext,
  options: ShellOptions = {},
): Promise<number> {
  const { out } = ctx;
  let client: TlsSongClient | undefined;
  let running: AbortController | undefined;
  using reader = LineReader.open({
    prompt: "soundsock> ",
    signal: ctx.signal,
    terminal: options.terminal,
    onInterrupt: () => running?.abort(new DOMException("Interrupted", "AbortError")),
  });
  out.info(
    `tls-client shell for ${ctx.address.hostname}:${ctx.address.port}. Type "help" for ` +
      `commands${reader.terminal ? ", Ctrl+D to leave" : ""}.`,
  );
  try {
    for (;;) {
      const line = await reader.read();
      if (line === null || ctx.signal.aborted) break;
      let words: string[];
      try {
        words = splitWords(line);
      } catch (error) {
        out.error((error as Error).message);
        continue;
      }
      const [typed, ...args] = words;
      if (typed === undefined) continue;
      const name = ALIASES[typed] ?? typed;
      const command = COMMANDS[name];
      if (!command) {
        out.error(`unknown command "${peer(typed)}" — type "help"`);
        continue;
      }
      if (args.length < command.min) {
        const missing = command.args.split(" ")[args.length] ?? "an argument";
        out.error(`${name}: missing ${missing.replace(/[[\]]/g, "")} (usage: ${usageOf(name)})`);
        continue;
      }
      if (args.length > command.max) {
        out.error(
          `${name}: unexpected argument "${peer(args[command.max]!)}" (usage: ${usageOf(name)}; ` +
            `quote a name with spaces: ${name} "my song")`,
        );
        continue;
      }
      if (name === "quit") break;
      if (!command.run) {
        try {
          out.stdout(shellHelp(args[0]));
        } catch (error) {
          out.error((error as Error).message);
        }
        continue;
      }
      const stop = running = new AbortController();
      const signal = AbortSignal.any([ctx.signal, stop.signal]);
      const commandCtx: ClientContext = { ...ctx, signal };
      try {
        if (!command.ownConnection) client ??= await openClient(commandCtx);
        await command.run(commandCtx, args, client);
      } catch (error) {
        if (ctx.signal.aborted) break;
        if (!stop.signal.aborted) {
          out.error(peer((error as Error).message));
          // A refusal leaves the connection usable; anything else: reconnect next time.
          if ((error as { exitCode?: number }).exitCode !== ExitCode.REFUSED) {
            client?.close();
            client = undefined;
          }
        }
      } finally {
        running = undefined;
      }
      if (stop.signal.aborted && !ctx.signal.aborted && !command.ownConnection) {
        out.info("Stopped.");
        // An interrupted download leaves the connection mid-stream: start afresh next time.
        client?.close();
        client = undefined;
      }
    }
  } finally {
    await client?.bye();
  }
  return ExitCode.OK;
}
