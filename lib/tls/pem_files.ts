/**
 * Reading the PEM files the TLS tools are given (`--ca`, `--cert`, `--key`), with errors that
 * say what is wrong and how to fix it: on a first run the files usually just do not exist yet,
 * because `deno task certs` has not been run.
 *
 * @module
 */

/** The command that creates `certs/` (CA, server certificate and key). */
export const CERTS_COMMAND = "deno task certs";

/** A PEM file that cannot be used; `message` is one line with the cause and the fix. */
export class PemFileError extends Error {
  /** Exit status (1: a file problem, not a bad command line). */
  readonly exitCode = 1;
  /** Why: the file is missing, unreadable, or holds no PEM block of the expected kind. */
  readonly reason: "missing" | "unreadable" | "not_pem";
  /** The path as given. */
  readonly path: string;
  /** Creates the error. */
  constructor(
    reason: PemFileError["reason"],
    path: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "PemFileError";
    this.reason = reason;
    this.path = path;
  }
}

/** What a PEM file is for, for {@linkcode readPemFile}'s messages. */
export interface PemFileRole {
  /** What the file holds, e.g. `CA certificate`. */
  what: string;
  /** The flag that names it, e.g. `--ca`. */
  flag: string;
  /** The PEM block expected: a certificate or a private key. */
  kind: "certificate" | "private key";
  /** Other ways out when the file is missing, e.g. `pass --ca FILE or --pin SHA256`. */
  alternative: string;
}

/**
 * Reads a PEM file.
 *
 * @throws {PemFileError} when it does not exist (naming {@linkcode CERTS_COMMAND}), cannot be
 * read, or holds no `-----BEGIN …CERTIFICATE-----` / `…PRIVATE KEY-----` block.
 */
export async function readPemFile(path: string, role: PemFileRole): Promise<string> {
  const named = `the ${role.what} "${path}" (${role.flag})`;
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (cause) {
    if (cause instanceof Deno.errors.NotFound) {
      throw new PemFileError(
        "missing",
        path,
        `${capitalize(named)} does not exist: run \`${CERTS_COMMAND}\` to create it, ` +
          `or ${role.alternative}`,
        { cause },
      );
    }
    const why = cause instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : cause instanceof Deno.errors.IsADirectory || /directory/i.test(String(cause))
      ? "it is a folder, not a file"
      : (cause as Error).message;
    throw new PemFileError("unreadable", path, `Cannot read ${named}: ${why}`, { cause });
  }
  const block = role.kind === "certificate"
    ? /-----BEGIN (X509 |TRUSTED )?CERTIFICATE-----/
    : /-----BEGIN ([A-Z]+ )?PRIVATE KEY-----/;
  if (!block.test(text)) {
    throw new PemFileError(
      "not_pem",
      path,
      `${capitalize(named)} holds no PEM ${role.kind} (no "-----BEGIN ${
        role.kind === "certificate" ? "CERTIFICATE" : "PRIVATE KEY"
      }-----" line)`,
    );
  }
  return text;
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** What `--ca` adds to the connect options: the CA, or the name of the missing default. */
export interface CaChoice {
  /** The CA certificate (PEM), when the file exists. */
  caCerts?: string[];
  /** The default CA file, when it does not exist (only the system roots are trusted). */
  missingCa?: string;
}

/**
 * Loads tls-client's `--ca`. A missing *default* file is not an error: the system roots are
 * used (public servers work), and a later unknown-authority failure names the missing file.
 *
 * @throws {PemFileError} for a `--ca` the user gave that is missing or not a certificate, or
 * a default that exists but is unusable.
 */
export async function loadCa(path: string, options: { explicit: boolean }): Promise<CaChoice> {
  try {
    return {
      caCerts: [
        await readPemFile(path, {
          what: "CA certificate",
          flag: "--ca",
          kind: "certificate",
          alternative:
            "pass --ca FILE (the CA that signed the server's certificate) or --pin SHA256",
        }),
      ],
    };
  } catch (error) {
    if (error instanceof PemFileError && error.reason === "missing" && !options.explicit) {
      return { missingCa: path };
    }
    throw error;
  }
}

/**
 * Loads tls-server's certificate and private key (certificate first, so the first error is
 * always about the certificate when neither exists).
 *
 * @throws {PemFileError} for a missing, unreadable or non-PEM file.
 */
export async function loadServerIdentity(
  certPath: string,
  keyPath: string,
): Promise<{ cert: string; key: string }> {
  const alternative = "pass --cert FILE and --key FILE";
  const cert = await readPemFile(certPath, {
    what: "server certificate",
    flag: "--cert",
    kind: "certificate",
    alternative,
  });
  const key = await readPemFile(keyPath, {
    what: "server private key",
    flag: "--key",
    kind: "private key",
    alternative,
  });
  return { cert, key };
}
