// Hand-written SRTP sender: werift's SrtpSession makes a cipher and an HMAC per packet; nothing on npm does batched SRTP.
import crypto from "node:crypto";
import { ExtensionProfiles, ProtectionProfileAes128CmHmacSha1_80, type RtpHeader } from "werift";

const TAG_LENGTH = 10;
/** HMAC-SHA1 block size; the scratch buffer keeps the ipad block in front of the packet so one hash call covers both. */
const PAD = 64;
/** Room for the 4-byte ROC after the packet in the scratch buffer. */
const ROC_LENGTH = 4;

// werift's Context.updateRolloverCount constants (rtp/src/srtp/context/context.js).
const MAX_ROC_DISORDER = 100;
const MAX_SEQUENCE_NUMBER = 65535;

/** Packets of one SSRC whose keystream one ecb.update() computes ahead (keystream depends on SSRC, ROC, SEQ only). */
const AHEAD = 32;
/** Payloads above this many AES blocks (1536 bytes) get keystream for themselves only. */
const AHEAD_MAX_BLOCKS = 96;

interface SsrcState {
  ssrc: number;
  roc: number;
  lastSeq: number;
  seen: boolean;
  /** Largest payload seen, in blocks (up to AHEAD_MAX_BLOCKS): the keystream computed ahead is this long per packet. */
  maxBlocks: number;
  /** Keystream of packets ksSeq .. ksSeq + ksCount - 1 at ROC ksRoc, ksBlocks blocks each. */
  ks: Buffer | undefined;
  ks32: Int32Array | undefined;
  ksRoc: number;
  ksSeq: number;
  ksCount: number;
  ksBlocks: number;
}

const newState = (ssrc: number): SsrcState => ({
  ssrc,
  roc: 0,
  lastSeq: 0,
  seen: false,
  maxBlocks: 0,
  ks: undefined,
  ks32: undefined,
  ksRoc: 0,
  ksSeq: 0,
  ksCount: 0,
  ksBlocks: 0,
});

export interface SessionKeys {
  /** 16 bytes, AES-128. */
  sessionKey: Uint8Array;
  /** 20 bytes, HMAC-SHA1. */
  authKey: Uint8Array;
  /** 14 bytes. */
  sessionSalt: Uint8Array;
}

/** RFC 3711 §4.3.1 key derivation with key_derivation_rate 0: AES-CM over (master salt XOR label << 48) << 16. */
export function deriveSessionKeys(masterKey: Uint8Array, masterSalt: Uint8Array): SessionKeys {
  if (masterKey.length !== 16) throw new RangeError(`SRTP master key must be 16 bytes, got ${masterKey.length}`);
  if (masterSalt.length !== 14) throw new RangeError(`SRTP master salt must be 14 bytes, got ${masterSalt.length}`);
  const ecb = crypto.createCipheriv("aes-128-ecb", masterKey, null);
  ecb.setAutoPadding(false);
  const keystream = (label: number, bytes: number): Buffer => {
    const blocks = Buffer.alloc(Math.ceil(bytes / 16) * 16);
    for (let b = 0; b < blocks.length; b += 16) {
      blocks.set(masterSalt, b);
      blocks[b + 7]! ^= label;
      blocks[b + 15] = b / 16;
    }
    return ecb.update(blocks).subarray(0, bytes);
  };
  return {
    sessionKey: keystream(0, 16),
    authKey: keystream(1, 20),
    sessionSalt: keystream(2, 14),
  };
}

/**
 * Protects outgoing RTP packets with SRTP_AES128_CM_HMAC_SHA1_80, byte-identical to werift's SrtpSession.encrypt
 * (same ROC bookkeeping per SSRC). AES-CM keystream is computed for the next 32 sequence numbers of an SSRC in one
 * ecb.update() (up to 48 KB held per SSRC), so neither one packet at a time nor a batch pays an update per packet.
 * Not reentrant: one instance per DTLS transport.
 */
export class SrtpProtector {
  private readonly ecb: crypto.Cipher;
  private readonly salt: Uint8Array;
  private readonly states = new Map<number, SsrcState>();

  /** [ipad block | plain packet being protected | ROC]. */
  private scratch!: Buffer;
  private scratch32!: Int32Array;
  /** scratch.subarray(0, n), kept so hashing a packet of a length seen before allocates no view. */
  private hashViews: Buffer[] = [];
  /** [opad block | inner digest]. */
  private readonly outer = Buffer.alloc(PAD + 20);

  private headerLengths = new Uint16Array(64);

  constructor(masterKey: Uint8Array, masterSalt: Uint8Array);
  /** Session keys as they are, without derivation (test vectors). */
  constructor(sessionKeys: SessionKeys);
  constructor(keyOrSessionKeys: Uint8Array | SessionKeys, masterSalt?: Uint8Array) {
    const { sessionKey, authKey, sessionSalt } =
      keyOrSessionKeys instanceof Uint8Array ? deriveSessionKeys(keyOrSessionKeys, masterSalt ?? new Uint8Array(0)) : keyOrSessionKeys;
    if (sessionKey.length !== 16 || authKey.length !== 20 || sessionSalt.length !== 14) throw new RangeError("bad SRTP session key lengths");
    this.ecb = crypto.createCipheriv("aes-128-ecb", sessionKey, null);
    this.ecb.setAutoPadding(false);
    this.salt = sessionSalt;
    this.growScratch(1500);
    this.scratch.fill(0x36, 0, PAD);
    this.outer.fill(0x5c, 0, PAD);
    for (let i = 0; i < authKey.length; i++) {
      this.scratch[i]! ^= authKey[i]!;
      this.outer[i]! ^= authKey[i]!;
    }
  }

  /**
   * Protects one plain RTP packet (packet[0..length)) into out at outOffset. Returns the bytes written, length + 10.
   */
  protectInto(packet: Uint8Array, length: number, out: Uint8Array, outOffset: number): number {
    const headerLength = rtpHeaderLength(packet, length);
    if (outOffset + length + TAG_LENGTH > out.length) throw new RangeError("SRTP output buffer too small");
    this.loadScratch(packet, length);
    return this.protectLoaded(readSsrc(packet), readSeq(packet), length, headerLength, out, outOffset);
  }

  /**
   * Protects the packet made of `header` (a complete RTP header, CSRCs and extension included) followed by `payload`
   * into out at outOffset, without assembling the plain packet first. Returns the bytes written.
   */
  protectParts(header: Uint8Array, payload: Uint8Array, out: Uint8Array, outOffset: number): number {
    const headerLength = header.length;
    const length = headerLength + payload.length;
    if (rtpHeaderLength(header, headerLength) !== headerLength) throw new RangeError("RTP header length mismatch");
    if (outOffset + length + TAG_LENGTH > out.length) throw new RangeError("SRTP output buffer too small");
    if (length + PAD + ROC_LENGTH > this.scratch.length) this.growScratch(length);
    this.scratch.set(header, PAD);
    this.scratch.set(payload, PAD + headerLength);
    return this.protectLoaded(readSsrc(header), readSeq(header), length, headerLength, out, outOffset);
  }

  /**
   * Protects packets[0..count) back to back into out from outOffset. ends[i] receives the end offset of protected
   * packet i in out (packet i spans ends[i-1], or outOffset for the first, to ends[i]). Returns the end of the last.
   * Checks every header and the room in out before protecting any.
   */
  protectBatch(
    packets: ArrayLike<Uint8Array>,
    count: number,
    out: Uint8Array,
    ends: { [i: number]: number; length: number },
    outOffset = 0,
  ): number {
    if (count > this.headerLengths.length) this.headerLengths = new Uint16Array(count * 2);
    if (ends.length < count) throw new RangeError("ends shorter than count");
    let end = outOffset;
    for (let i = 0; i < count; i++) {
      const p = packets[i]!;
      this.headerLengths[i] = rtpHeaderLength(p, p.length);
      end += p.length + TAG_LENGTH;
    }
    if (end > out.length) throw new RangeError("SRTP output buffer too small");
    let offset = outOffset;
    for (let i = 0; i < count; i++) {
      const p = packets[i]!;
      this.loadScratch(p, p.length);
      offset += this.protectLoaded(readSsrc(p), readSeq(p), p.length, this.headerLengths[i]!, out, offset);
      ends[i] = offset;
    }
    return offset;
  }

  /** Drop-in for werift's SrtpSession.encrypt(payload, header). */
  encrypt(payload: Buffer, header: RtpHeader): Buffer {
    const headerLength = header.serializeSize;
    const length = headerLength + payload.length;
    if (length + PAD + ROC_LENGTH > this.scratch.length) this.growScratch(length);
    if (!this.writeHeader(header, headerLength)) header.serialize(headerLength).copy(this.scratch, PAD);
    payload.copy(this.scratch, PAD + headerLength);
    const out = Buffer.allocUnsafe(length + TAG_LENGTH);
    this.protectLoaded(header.ssrc, header.sequenceNumber, length, headerLength, out, 0);
    return out;
  }

  /**
   * werift's RtpHeader.serialize (rtp/src/rtp/rtp.js) into scratch after the ipad block, side effects included,
   * without its zero-filled Buffer and BitWriters. False for the generic extension profile, left to werift.
   */
  private writeHeader(h: RtpHeader, size: number): boolean {
    const s = this.scratch;
    const oneByte = h.extensionProfile === ExtensionProfiles.OneByte;
    if (h.extensions.length > 0) {
      if (!oneByte && h.extensionProfile !== ExtensionProfiles.TwoByte) return false;
      h.extension = true;
    } else if (h.extension) {
      return false;
    }
    let o = PAD;
    s[o++] = ((h.version & 3) << 6) | (h.padding ? 0x20 : 0) | (h.extension ? 0x10 : 0) | (h.csrc.length & 0x0f);
    s[o++] = (h.marker ? 0x80 : 0) | (h.payloadType & 0x7f);
    s.writeUInt16BE(h.sequenceNumber, o);
    s.writeUInt32BE(h.timestamp, o + 2);
    s.writeUInt32BE(h.ssrc, o + 6);
    o += 10;
    for (const csrc of h.csrc) o = s.writeUInt32BE(csrc, o);
    if (h.extension) {
      const extHeader = o;
      s.writeUInt16BE(h.extensionProfile, o);
      o += 4;
      const first = o;
      for (const e of h.extensions) {
        if (oneByte) {
          o = s.writeUInt8((e.id << 4) | (e.payload.length - 1), o);
        } else {
          o = s.writeUInt8(e.id, o);
          o = s.writeUInt8(e.payload.length, o);
        }
        o += e.payload.copy(s, o);
      }
      const rounded = Math.trunc((o - first + 3) / 4) * 4;
      s.writeUInt16BE(rounded / 4, extHeader + 2);
      while (o < first + rounded) s[o++] = 0;
    }
    if (o - PAD !== size) throw new Error(`RTP header serialized to ${o - PAD} bytes, expected ${size}`);
    h.payloadOffset = o - PAD;
    return true;
  }

  /** Sets the rollover state of an SSRC, e.g. taken over from werift's context after it already sent packets. */
  setRolloverState(ssrc: number, rolloverCounter: number, lastSequenceNumber: number, seen = true): void {
    const s = this.state(ssrc >>> 0);
    s.roc = rolloverCounter >>> 0;
    s.lastSeq = lastSequenceNumber;
    s.seen = seen;
  }

  getRolloverCounter(ssrc: number): number | undefined {
    return this.states.get(ssrc >>> 0)?.roc;
  }

  private state(ssrc: number): SsrcState {
    let s = this.states.get(ssrc);
    if (!s) this.states.set(ssrc, (s = newState(ssrc)));
    return s;
  }

  /** The plain packet is in scratch after the ipad block. */
  private protectLoaded(ssrc: number, seq: number, length: number, headerLength: number, out: Uint8Array, outOffset: number): number {
    const s = this.state(ssrc);
    const roc = advanceRoc(s, seq);
    const blocks = (length - headerLength + 15) >> 4;
    let k = seq - s.ksSeq;
    if (blocks > 0 && (s.ks === undefined || s.ksRoc !== roc || k < 0 || k >= s.ksCount || blocks > s.ksBlocks)) {
      this.refill(s, roc, seq, blocks);
      k = 0;
    }
    return this.seal(length, headerLength, roc, s.ks, s.ks32, k * s.ksBlocks * 16, out, outOffset);
  }

  /** Keystream for this packet and, if it is not oversized, the AHEAD - 1 sequence numbers after it at the same ROC. */
  private refill(s: SsrcState, roc: number, seq: number, blocks: number): void {
    let count = 1;
    if (blocks <= AHEAD_MAX_BLOCKS) {
      if (blocks > s.maxBlocks) s.maxBlocks = blocks;
      blocks = s.maxBlocks;
      count = Math.min(AHEAD, 0x10000 - seq);
    }
    const total = count * blocks;
    if (total > counters.length >> 4) growCounters(total * 16);
    writeCounters(this.salt, s.ssrc, roc, seq, count, blocks);
    const ks = this.ecb.update((counterViews[total] ??= counters.subarray(0, total * 16)));
    s.ks = ks;
    s.ks32 = (ks.byteOffset & 3) === 0 ? new Int32Array(ks.buffer, ks.byteOffset, ks.length >> 2) : undefined;
    s.ksRoc = roc;
    s.ksSeq = seq;
    s.ksCount = count;
    s.ksBlocks = blocks;
  }

  private loadScratch(packet: Uint8Array, length: number): void {
    if (length + PAD + ROC_LENGTH > this.scratch.length) this.growScratch(length);
    if (length === packet.length) this.scratch.set(packet, PAD);
    else this.scratch.set(packet.subarray(0, length), PAD);
  }

  /**
   * The plain packet is in scratch after the ipad block: encrypt its payload in place with ks from ksOffset,
   * authenticate, copy packet and tag to out. Returns length + 10.
   */
  private seal(
    length: number,
    headerLength: number,
    roc: number,
    ks: Buffer | undefined,
    ks32: Int32Array | undefined,
    ksOffset: number,
    out: Uint8Array,
    outOffset: number,
  ): number {
    const s = this.scratch;
    const payloadLength = length - headerLength;
    const start = PAD + headerLength; // a multiple of 4: RTP headers are whole 32-bit words
    let i = 0;
    if (ks32) {
      const s32 = this.scratch32;
      const words = payloadLength >> 2;
      for (let w = start >> 2, k = ksOffset >> 2; i < words; i++, w++, k++) s32[w]! ^= ks32[k]!;
      i = words << 2;
    }
    for (; i < payloadLength; i++) s[start + i]! ^= ks![ksOffset + i]!;
    s.writeUInt32BE(roc, PAD + length);
    const hashLength = PAD + length + ROC_LENGTH;
    const view = (this.hashViews[hashLength] ??= s.subarray(0, hashLength));
    // "binary" (latin1) digests measured faster than "buffer" ones (no ArrayBuffer per digest).
    const inner = crypto.hash("sha1", view, "binary");
    const o = this.outer;
    for (let j = 0; j < 20; j++) o[PAD + j] = inner.charCodeAt(j);
    const tag = crypto.hash("sha1", o, "binary");
    s.copy(out, outOffset, PAD, PAD + length);
    const t = outOffset + length;
    for (let j = 0; j < TAG_LENGTH; j++) out[t + j] = tag.charCodeAt(j);
    return length + TAG_LENGTH;
  }

  private growScratch(packetLength: number): void {
    const bytes = (PAD + packetLength + ROC_LENGTH + 3) & ~3;
    const buf = Buffer.from(new ArrayBuffer(bytes));
    if (this.scratch) this.scratch.copy(buf, 0, 0, PAD);
    this.scratch = buf;
    this.scratch32 = new Int32Array(buf.buffer, 0, bytes >> 2);
    this.hashViews = [];
  }
}

// AES-CM counter blocks for the next ecb.update(), shared by every protector (one thread, used synchronously).
let counters = Buffer.alloc(0);
let counters32 = new Int32Array(0);
let counterViews: Buffer[] = [];
const iv = Buffer.alloc(16);
const iv32 = new Int32Array(iv.buffer, iv.byteOffset, 4);

function growCounters(bytes: number): void {
  const size = Math.ceil(bytes / 16) * 16;
  counters = Buffer.from(new ArrayBuffer(size));
  counters32 = new Int32Array(counters.buffer, 0, size >> 2);
  counterViews = [];
}

/**
 * Counter blocks for `count` packets from seq on, `blocks` each. RFC 3711 §4.1.1: block j of a packet is
 * (salt << 16) XOR (SSRC << 64) XOR (ROC << 32 | SEQ) << 16, plus j.
 */
function writeCounters(salt: Uint8Array, ssrc: number, roc: number, seq: number, count: number, blocks: number): void {
  iv.set(salt, 0);
  iv[14] = 0;
  iv[15] = 0;
  iv.writeUInt32BE((iv.readUInt32BE(4) ^ ssrc) >>> 0, 4);
  iv.writeUInt32BE((iv.readUInt32BE(8) ^ roc) >>> 0, 8);
  const w0 = iv32[0]!;
  const w1 = iv32[1]!;
  const w2 = iv32[2]!;
  let w = 0;
  for (let p = 0; p < count; p++) {
    iv[12] = salt[12]! ^ ((seq + p) >> 8);
    iv[13] = salt[13]! ^ ((seq + p) & 0xff);
    const w3 = iv32[3]!;
    for (let j = 0; j < blocks; j++, w += 4) {
      counters32[w] = w0;
      counters32[w + 1] = w1;
      counters32[w + 2] = w2;
      counters32[w + 3] = w3;
      counters[(w << 2) + 14] = j >> 8;
      counters[(w << 2) + 15] = j;
    }
  }
}

/** werift's Context.updateRolloverCount, quirks included (a first packet never moves the ROC). */
function advanceRoc(s: SsrcState, seq: number): number {
  if (!s.seen) {
    s.seen = true;
  } else if (seq === 0) {
    if (s.lastSeq > MAX_ROC_DISORDER) s.roc = (s.roc + 1) >>> 0;
  } else if (s.lastSeq < MAX_ROC_DISORDER && seq > MAX_SEQUENCE_NUMBER - MAX_ROC_DISORDER) {
    if (s.roc > 0) s.roc--;
  } else if (seq < MAX_ROC_DISORDER && s.lastSeq > MAX_SEQUENCE_NUMBER - MAX_ROC_DISORDER) {
    s.roc = (s.roc + 1) >>> 0;
  }
  s.lastSeq = seq;
  return s.roc;
}

function readSsrc(p: Uint8Array): number {
  return ((p[8]! << 24) | (p[9]! << 16) | (p[10]! << 8) | p[11]!) >>> 0;
}

function readSeq(p: Uint8Array): number {
  return (p[2]! << 8) | p[3]!;
}

/** Fixed header + CSRCs + extension (RFC 3550 §5.1, 5.3.1); throws on anything that is not a whole RTP v2 header. */
export function rtpHeaderLength(p: Uint8Array, length: number): number {
  if (length < 12 || length > p.length || p[0]! >> 6 !== 2) throw new RangeError("not an RTP packet");
  let n = 12 + (p[0]! & 0x0f) * 4;
  if (p[0]! & 0x10) {
    if (n + 4 > length) throw new RangeError("RTP header extension truncated");
    n += 4 + ((p[n + 2]! << 8) | p[n + 3]!) * 4;
  }
  if (n > length) throw new RangeError("RTP header longer than packet");
  return n;
}

/** What installFastSrtp touches on werift's RTCDtlsTransport. */
export interface DtlsTransportWithSrtp {
  srtp?: {
    encrypt(payload: Buffer, header: RtpHeader): Buffer;
    config?: { profile: number; keys: { localMasterKey: Buffer; localMasterSalt: Buffer } };
    localContext?: { srtpSSRCStates?: Record<number, { rolloverCounter: number; lastSequenceNumber: number; rolloverHasProcessed?: boolean }> };
  };
}

const installed = new WeakMap<object, SrtpProtector>();

/**
 * Replaces werift's per-packet SRTP on a connected RTCDtlsTransport (its `srtp` exists once the state is
 * "connected") with an SrtpProtector for the same local keys, and returns it, so a batched send path shares its ROC
 * state. Returns false when there is no SRTP session yet or the profile is not AES_CM_128_HMAC_SHA1_80 (AEAD GCM stays
 * on werift's code).
 */
export function installFastSrtp(dtlsTransport: DtlsTransportWithSrtp): SrtpProtector | false {
  const srtp = dtlsTransport.srtp;
  if (!srtp?.config || srtp.config.profile !== ProtectionProfileAes128CmHmacSha1_80) return false;
  const existing = installed.get(srtp);
  if (existing) return existing;
  const protector = new SrtpProtector(srtp.config.keys.localMasterKey, srtp.config.keys.localMasterSalt);
  // Packets werift already protected moved its ROC state; continue from there.
  for (const [ssrc, s] of Object.entries(srtp.localContext?.srtpSSRCStates ?? {})) {
    protector.setRolloverState(Number(ssrc), s.rolloverCounter, s.lastSequenceNumber, s.rolloverHasProcessed === true);
  }
  srtp.encrypt = (payload, header) => protector.encrypt(payload, header);
  installed.set(srtp, protector);
  return protector;
}
