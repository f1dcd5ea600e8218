/**
 * `deno task certs` — creates certs/ca.crt, certs/server.crt and their keys for tls-server.
 *
 * @module
 */

import {
  type CommandSpec,
  ExitCode,
  Output,
  parseCommandLine,
  renderHelp,
  runMain,
  verbosityOf,
} from "../lib/cli/mod.ts";
import { createCertificates } from "../lib/tls/certs.ts";

/** Command-line declaration. */
export const SPEC = {
  name: "certs",
  summary: "Create a local CA and a server certificate for tls-server (with the openssl CLI).",
  usage: ["[--dir certs] [--name NAME]... [--days N] [--force]"],
  flags: {
    dir: { type: "string", default: "certs", valueName: "DIR", description: "Output folder." },
    name: {
      type: "string",
      valueName: "NAMES",
      description: "Extra host names/IPs for the server certificate, comma-separated.",
    },
    days: {
      type: "number",
      default: 825,
      min: 1,
      max: 36500,
      valueName: "N",
      description: "Validity in days.",
    },
    force: { type: "boolean", description: "Replace existing certificates." },
  },
  examples: [
    ["deno task certs", "CA + server certificate for localhost, 127.0.0.1, ::1"],
    ["deno task certs --name music.lan,192.168.1.20 --force", "also valid for these names"],
  ],
  notes: [
    "Files: DIR/ca.crt (give to clients: --ca), DIR/ca.key, DIR/server.crt, DIR/server.key " +
    "(keys are mode 0600). Existing files are kept unless --force.",
  ],
} as const satisfies CommandSpec;

/** Entry point. */
export async function main(args: string[], signal: AbortSignal): Promise<number> {
  // --name may be repeated: gather every occurrence before the strict parser sees one.
  const names: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--name" && i + 1 < args.length) names.push(args[++i]!);
    else if (a.startsWith("--name=")) names.push(a.slice(7));
    else rest.push(a);
  }
  const { flags } = parseCommandLine(SPEC, rest);
  const out = new Output(verbosityOf(flags));
  if (flags.help) {
    out.stdout(renderHelp(SPEC));
    return ExitCode.OK;
  }
  const result = await createCertificates(flags.dir, {
    names: names.flatMap((n) => n.split(",")).map((n) => n.trim()).filter(Boolean),
    days: flags.days,
    force: flags.force,
    signal,
  });
  if (result.created) {
    out.info(
      `certs: created ${result.caCert} (CA) and ${result.serverCert} for ${
        result.names.join(", ")
      }`,
    );
  } else {
    out.info(`certs: ${flags.dir}/ already has certificates (use --force to replace them)`);
  }
  out.info(`certs: server certificate pin (tls-client --pin): ${result.serverPin}`);
  return ExitCode.OK;
}

if (import.meta.main) await runMain(main, SPEC);
