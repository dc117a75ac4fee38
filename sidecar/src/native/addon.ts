// The native media send (sidecar/native/srtp-send.c), loaded once. It is optional by design: a machine without a
// compiler, a failed build or a load error leaves the sidecar on its JS send path, with the reason in the log and
// in /v1/health; EDGE_VOD_NATIVE=0 chooses the JS path on purpose.
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const SRTP_PROFILE_AES_CM_80 = 1;
export const SRTP_PROFILE_AEAD_GCM_128 = 2;

/** An SRTP context owned by the addon (keys, cipher, ROC per SSRC); freed when the handle is collected. */
export type NativeContext = { readonly __nativeContext: unique symbol };

export interface Addon {
  readonly MAX_PACKETS: number;
  createContext(profile: number, sessionKey: Uint8Array, sessionSalt: Uint8Array, authKey: Uint8Array | null): NativeContext;
  setRolloverState(ctx: NativeContext, ssrc: number, roc: number, lastSeq: number, seen: boolean): void;
  rolloverCounter(ctx: NativeContext, ssrc: number): number | undefined;
  /** Protects buf[offset, offset + length) in place, the tag after it; returns the protected length. */
  protect(ctx: NativeContext, buf: Uint8Array, offset: number, length: number): number;
  /**
   * Protects packets[0, count) in place (lengths[i] becomes the protected length) and sends them on the connected
   * fd; returns how many, from the first, the kernel took (or dropped on a send error). fd < 0: protect only.
   */
  flush(ctx: NativeContext, fd: number, arena: Uint8Array, offsets: Uint32Array, lengths: Uint16Array, count: number): number;
  /** syscalls, datagrams, packets, EAGAINs, dropped, GSO datagrams, GSO turned off. */
  counters(out: Float64Array): void;
  usesGso(ctx: NativeContext): boolean;
  disableGso(ctx: NativeContext): void;
}

export interface NativeStatus {
  /** "native": the addon sends; "js": the JS path does, for `reason`. */
  mode: "native" | "js";
  reason: string;
}

const ADDON_FILE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../native/build/srtp-send.node");

function load(): { addon: Addon | undefined; status: NativeStatus } {
  if (process.env.EDGE_VOD_NATIVE === "0") return { addon: undefined, status: { mode: "js", reason: "EDGE_VOD_NATIVE=0" } };
  const file = process.env.EDGE_VOD_NATIVE_ADDON || ADDON_FILE;
  if (!fs.existsSync(file)) return { addon: undefined, status: { mode: "js", reason: `native send not built (${file} missing; npm ci builds it with cc)` } };
  try {
    const addon = createRequire(import.meta.url)(file) as Addon;
    if (typeof addon.flush !== "function" || typeof addon.createContext !== "function") throw new Error("not the edge-vod native send");
    return { addon, status: { mode: "native", reason: file } };
  } catch (err) {
    return { addon: undefined, status: { mode: "js", reason: `native send failed to load: ${(err as Error).message.split("\n")[0]}` } };
  }
}

const loaded = load();

/** The addon, or undefined when the JS path sends. */
export const nativeAddon: Addon | undefined = loaded.addon;
export const nativeStatus: NativeStatus = loaded.status;
