// SRTP through the native addon: the same contract as the JS SrtpProtector (byte-identical output, werift's ROC
// bookkeeping), for AES-CM-128 with HMAC-SHA1-80 and for AEAD AES-128-GCM (RFC 7714), which the JS fast path leaves
// to werift. Keys are the session keys werift's DTLS already derived.
import { ProtectionProfileAeadAes128Gcm, ProtectionProfileAes128CmHmacSha1_80, type RtpHeader } from "werift";
import { SRTP_PROFILE_AEAD_GCM_128, SRTP_PROFILE_AES_CM_80, nativeAddon, type Addon, type NativeContext } from "./addon.ts";
import type { DtlsTransportWithSrtp, SessionKeys } from "../rtp/srtp-protect.ts";

export type SrtpProfileName = "aes-cm-128-hmac-sha1-80" | "aead-aes-128-gcm";

export interface NativeSessionKeys {
  sessionKey: Uint8Array;
  /** 14 bytes (AES-CM) or at least 12 (GCM uses the first 12). */
  sessionSalt: Uint8Array;
  /** 20 bytes, AES-CM only. */
  authKey?: Uint8Array;
}

export class NativeSrtp {
  readonly tagLength: number;
  readonly ctx: NativeContext;
  private readonly addon: Addon;

  constructor(
    readonly profile: SrtpProfileName,
    keys: NativeSessionKeys | SessionKeys,
    addon: Addon | undefined = nativeAddon,
  ) {
    if (!addon) throw new Error("the native send is not loaded");
    this.addon = addon;
    const cm = profile === "aes-cm-128-hmac-sha1-80";
    this.tagLength = cm ? 10 : 16;
    this.ctx = addon.createContext(cm ? SRTP_PROFILE_AES_CM_80 : SRTP_PROFILE_AEAD_GCM_128, keys.sessionKey, keys.sessionSalt, cm ? (keys.authKey ?? null) : null);
  }

  /** Protects packet[0, length) into out at outOffset; returns the bytes written (length + tag). */
  protectInto(packet: Uint8Array, length: number, out: Uint8Array, outOffset: number): number {
    if (outOffset + length + this.tagLength > out.length) throw new RangeError("SRTP output buffer too small");
    out.set(length === packet.length ? packet : packet.subarray(0, length), outOffset);
    return this.addon.protect(this.ctx, out, outOffset, length);
  }

  /** Drop-in for werift's SrtpSession.encrypt(payload, header), for what werift itself still sends. */
  encrypt(payload: Buffer, header: RtpHeader): Buffer {
    const headerLength = header.serializeSize;
    const out = Buffer.allocUnsafe(headerLength + payload.length + this.tagLength);
    header.serialize(headerLength).copy(out, 0);
    payload.copy(out, headerLength);
    this.addon.protect(this.ctx, out, 0, headerLength + payload.length);
    return out;
  }

  setRolloverState(ssrc: number, rolloverCounter: number, lastSequenceNumber: number, seen = true): void {
    this.addon.setRolloverState(this.ctx, ssrc >>> 0, rolloverCounter >>> 0, lastSequenceNumber & 0xffff, seen);
  }

  getRolloverCounter(ssrc: number): number | undefined {
    return this.addon.rolloverCounter(this.ctx, ssrc >>> 0);
  }
}

/** What installNativeSrtp reads of werift's SRTP session beyond DtlsTransportWithSrtp. */
interface WeriftLocalContext {
  srtpSessionKey?: Buffer;
  srtpSessionSalt?: Buffer;
  srtpSessionAuthTag?: Buffer;
  srtpSSRCStates?: Record<number, { rolloverCounter: number; lastSequenceNumber: number; rolloverHasProcessed?: boolean }>;
}

const installed = new WeakMap<object, NativeSrtp>();

/**
 * Replaces werift's per-packet SRTP on a connected RTCDtlsTransport with the native context for the same session
 * keys and ROC state, and returns it; false without an SRTP session, the addon, or a profile it knows.
 */
export function installNativeSrtp(dtlsTransport: DtlsTransportWithSrtp, addon: Addon | undefined = nativeAddon): NativeSrtp | false {
  const srtp = dtlsTransport.srtp;
  if (!addon || !srtp?.config) return false;
  const existing = installed.get(srtp);
  if (existing) return existing;
  const profile: SrtpProfileName | undefined =
    srtp.config.profile === ProtectionProfileAes128CmHmacSha1_80
      ? "aes-cm-128-hmac-sha1-80"
      : srtp.config.profile === ProtectionProfileAeadAes128Gcm
        ? "aead-aes-128-gcm"
        : undefined;
  const local = srtp.localContext as WeriftLocalContext | undefined;
  if (!profile || !local?.srtpSessionKey || !local.srtpSessionSalt) return false;
  const native = new NativeSrtp(profile, { sessionKey: local.srtpSessionKey, sessionSalt: local.srtpSessionSalt, authKey: local.srtpSessionAuthTag }, addon);
  // Packets werift already protected moved its ROC state; continue from there.
  for (const [ssrc, s] of Object.entries(local.srtpSSRCStates ?? {})) {
    native.setRolloverState(Number(ssrc), s.rolloverCounter, s.lastSequenceNumber, s.rolloverHasProcessed === true);
  }
  srtp.encrypt = (payload, header) => native.encrypt(payload, header);
  installed.set(srtp, native);
  return native;
}
