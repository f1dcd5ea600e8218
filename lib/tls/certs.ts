/**
 * A local certificate authority and a server certificate for tls-server, made with the
 * `openssl` command-line tool. The server certificate is shaped the way rustls (Deno's TLS)
 * insists on: not a CA (`basicConstraints=critical,CA:FALSE`, else "CaUsedAsEndEntity"),
 * names only in subjectAltName (the CN is ignored), `serverAuth` extended key usage.
 *
 * @module
 */

import { join } from "@std/path";
import { sha256Hex } from "../hash/sha256.ts";

/** Names every generated server certificate covers. */
export const DEFAULT_CERT_NAMES: readonly string[] = ["localhost", "127.0.0.1", "::1"];

/** Files written by {@linkcode createCertificates}, all inside one folder. */
export interface CertificatePaths {
  /** The CA certificate clients trust (`--ca`). */
  caCert: string;
  /** The CA private key (mode 0600); only needed to issue more certificates. */
  caKey: string;
  /** The server certificate (`--cert`). */
  serverCert: string;
  /** The server private key (mode 0600, `--key`). */
  serverKey: string;
}

/** Options for {@linkcode createCertificates}. */
export interface CreateCertificatesOptions {
  /**
   * Host names and IP addresses the server certificate is valid for, added to
   * {@linkcode DEFAULT_CERT_NAMES}.
   * @default {[]}
   */
  names?: readonly string[];
  /**
   * Validity of both certificates in days.
   * @default {825}
   */
  days?: number;
  /**
   * Replace certificates that already exist.
   * @default {false}
   */
  force?: boolean;
  /** Kills openssl and stops. */
  signal?: AbortSignal;
  /** Path of the openssl executable. @default {"openssl"} */
  openssl?: string;
}

/** Result of {@linkcode createCertificates}. */
export interface CreateCertificatesResult extends CertificatePaths {
  /** False when all four files already existed and `force` was not set. */
  created: boolean;
  /** Names in the server certificate. */
  names: string[];
  /** SHA-256 pin of the server certificate (for `tls-client --pin`). */
  serverPin: string;
}

/** openssl is missing or failed. */
export class CertificateError extends Error {
  /** Creates the error; `message` is user-facing. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "CertificateError";
  }
}

/** The four file paths inside `dir`. */
export function certificatePaths(dir: string): CertificatePaths {
  return {
    caCert: join(dir, "ca.crt"),
    caKey: join(dir, "ca.key"),
    serverCert: join(dir, "server.crt"),
    serverKey: join(dir, "server.key"),
  };
}

/**
 * Creates (in `dir`, made if missing) a local CA and a server certificate signed by it for
 * `localhost`, `127.0.0.1`, `::1` and `options.names`. Existing files are kept unless `force`.
 *
 * @throws {CertificateError} if openssl is missing or fails, or a name is not a valid host.
 */
export async function createCertificates(
  dir: string,
  options: CreateCertificatesOptions = {},
): Promise<CreateCertificatesResult> {
  const paths = certificatePaths(dir);
  const names = [...new Set([...DEFAULT_CERT_NAMES, ...(options.names ?? [])])];
  for (const name of names) {
    if (!/^[A-Za-z0-9.:*-]+$/.test(name) || name.length > 253) {
      throw new CertificateError(`Cannot create certificates: "${name}" is not a host name or IP`);
    }
  }
  const existing = await Promise.all(Object.values(paths).map(exists));
  if (!options.force && existing.every(Boolean)) {
    return {
      ...paths,
      created: false,
      names,
      serverPin: await certificatePin(paths.serverCert),
    };
  }
  await Deno.mkdir(dir, { recursive: true });
  const days = String(options.days ?? 825);
  const run = (args: string[]) => openssl(options.openssl ?? "openssl", args, options.signal);
  const scratch = await Deno.makeTempDir({ dir, prefix: ".certs-" });
  try {
    const tmp = certificatePaths(scratch);
    // Keys are created 0600 from the start: openssl honours the umask, so set the mode on an
    // empty file first and let openssl write into it.
    for (const key of [tmp.caKey, tmp.serverKey]) {
      await Deno.writeFile(key, new Uint8Array(), {
        mode: 0o600,
      });
    }
    await run(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", tmp.caKey]);
    const caExt = join(scratch, "ca.ext");
    await Deno.writeTextFile(
      caExt,
      [
        "[req]",
        "distinguished_name = dn",
        "[dn]",
        "[v3_ca]",
        "basicConstraints = critical, CA:TRUE, pathlen:0",
        "keyUsage = critical, keyCertSign, cRLSign",
        "subjectKeyIdentifier = hash",
        "",
      ].join("\n"),
    );
    await run([
      "req",
      "-x509",
      "-new",
      "-key",
      tmp.caKey,
      "-sha256",
      "-days",
      days,
      "-subj",
      "/CN=soundsock local CA",
      "-config",
      caExt,
      "-extensions",
      "v3_ca",
      "-out",
      tmp.caCert,
    ]);
    await run(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", tmp.serverKey]);
    const csr = join(scratch, "server.csr");
    await run(["req", "-new", "-key", tmp.serverKey, "-subj", "/CN=soundsock server", "-out", csr]);
    const serverExt = join(scratch, "server.ext");
    const san = names.map((n) => (isIp(n) ? `IP:${n}` : `DNS:${n}`)).join(", ");
    await Deno.writeTextFile(
      serverExt,
      [
        "basicConstraints = critical, CA:FALSE",
        "keyUsage = critical, digitalSignature, keyEncipherment",
        "extendedKeyUsage = serverAuth",
        `subjectAltName = ${san}`,
        "subjectKeyIdentifier = hash",
        "authorityKeyIdentifier = keyid",
        "",
      ].join("\n"),
    );
    await run([
      "x509",
      "-req",
      "-in",
      csr,
      "-CA",
      tmp.caCert,
      "-CAkey",
      tmp.caKey,
      "-CAcreateserial",
      "-sha256",
      "-days",
      days,
      "-extfile",
      serverExt,
      "-out",
      tmp.serverCert,
    ]);
    // Move into place only once everything exists, so a failure leaves no half set.
    for (const key of Object.keys(paths) as (keyof CertificatePaths)[]) {
      await Deno.rename(tmp[key], paths[key]);
    }
    for (const key of [paths.caKey, paths.serverKey]) await Deno.chmod(key, 0o600);
  } finally {
    await Deno.remove(scratch, { recursive: true }).catch(() => {});
  }
  return { ...paths, created: true, names, serverPin: await certificatePin(paths.serverCert) };
}

/** Decodes the first `CERTIFICATE` block of a PEM text to DER. */
export function pemToDer(pem: string): Uint8Array {
  const match = pem.match(/-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/);
  if (!match) throw new CertificateError("Cannot read certificate: no PEM CERTIFICATE block");
  const bin = atob(match[1]!.replace(/\s+/g, ""));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/**
 * The SHA-256 pin of a certificate: 64 lowercase hex digits of the SHA-256 of its DER bytes
 * (the same value as `openssl x509 -noout -fingerprint -sha256`, without colons).
 *
 * @param cert a PEM file path, PEM text, or DER bytes.
 */
export async function certificatePin(cert: string | Uint8Array): Promise<string> {
  if (cert instanceof Uint8Array) return sha256Hex(cert);
  const pem = cert.includes("-----BEGIN") ? cert : await Deno.readTextFile(cert);
  return sha256Hex(pemToDer(pem));
}

/** Normalises a user-typed pin: strips `sha256/`, colons and spaces; lowercase. */
export function normalizePin(pin: string): string | undefined {
  const hex = pin.replace(/^sha256[/:]/i, "").replace(/[:\s]/g, "").toLowerCase();
  return /^[0-9a-f]{64}$/.test(hex) ? hex : undefined;
}

function isIp(name: string): boolean {
  return /^\d+\.\d+\.\d+\.\d+$/.test(name) || name.includes(":");
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function openssl(bin: string, args: string[], signal?: AbortSignal): Promise<void> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(bin, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal,
    })
      .output();
  } catch (cause) {
    if (cause instanceof Deno.errors.NotFound) {
      throw new CertificateError(
        "Cannot create certificates: the openssl command is not installed (apt install openssl)",
        { cause },
      );
    }
    throw cause;
  }
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-2).join("; ");
    throw new CertificateError(`Cannot create certificates: openssl ${args[0]} failed: ${err}`);
  }
}
