/**
 * The receiver's ephemeral TLS certificate: a fresh P-256 key and a self-signed leaf
 * certificate (subjectAltName `DNS:file-send`, not a CA — Deno's TLS refuses either missing),
 * made by `openssl` in ~25 ms and never written to disk. Nobody verifies it by a CA: its
 * SHA-256 fingerprint is bound into the SPAKE2 confirmation instead.
 *
 * @module
 */

// Web Crypto, not node:crypto: the command makes the certificate before the code is shown,
// and loading node:crypto alone costs ~100 ms of start-up.

/** A key pair and its certificate, PEM. */
export interface EphemeralCert {
  key: string;
  cert: string;
  /** SHA-256 of the certificate's DER. */
  fingerprint: Uint8Array;
}

/** `openssl` failed or is missing. */
export class CertError extends Error {
  override name = "CertError";
}

/** Makes a certificate valid for two days. */
export async function createEphemeralCert(): Promise<EphemeralCert> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command("openssl", {
      args: [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        "/CN=file-send",
        "-addext",
        "subjectAltName=DNS:file-send",
        "-addext",
        "basicConstraints=critical,CA:FALSE",
        "-days",
        "2",
        "-keyout",
        "-",
        "-out",
        "-",
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (cause) {
    throw new CertError("Cannot make a TLS certificate: openssl is not installed", { cause });
  }
  const text = new TextDecoder().decode(output.stdout);
  const key = text.match(/-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----\n/)?.[0];
  const cert = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/)?.[0];
  if (!output.success || !key || !cert) {
    const why = new TextDecoder().decode(output.stderr).trim().split("\n").pop();
    throw new CertError(`Cannot make a TLS certificate: openssl failed (${why})`);
  }
  return { key, cert, fingerprint: await certFingerprint(cert) };
}

/** SHA-256 of a PEM certificate's DER (or of DER bytes). */
export async function certFingerprint(cert: string | Uint8Array): Promise<Uint8Array> {
  const der = typeof cert === "string"
    ? Uint8Array.from(
      atob(cert.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, "")),
      (c) => c.charCodeAt(0),
    )
    : Uint8Array.from(cert);
  return new Uint8Array(await crypto.subtle.digest("SHA-256", der));
}
