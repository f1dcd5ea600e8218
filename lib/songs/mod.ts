/**
 * The song library a server offers, with path confinement.
 *
 * @module
 */

export * from "./catalog.ts";
