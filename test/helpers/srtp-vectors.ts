// SRTP test material shared by the JS protector's and the native send's tests: random keys, werift sessions on
// both ends, and RTP packets (video with a header extension, audio with CSRCs) running across the sequence wrap.
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { ProtectionProfileAeadAes128Gcm, ProtectionProfileAes128CmHmacSha1_80, RtpHeader, SrtpSession } from "werift";

export const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ""), "hex");

export const VIDEO_SSRC = 0x1234abcd;
export const AUDIO_SSRC = 0xfedc0001;

export interface Plain {
  header: RtpHeader;
  payload: Buffer;
  /** header.serialize() + payload, what a sender would hand to protectInto. */
  packet: Buffer;
}

/** Video with a one-byte header extension (like werift's sender adds), audio plain; seq from 0xfff0 across the wrap. */
export function packets(count: number, seed = 1): Plain[] {
  let x = seed;
  const rand = () => ((x = (x * 1103515245 + 12345) >>> 0) >>> 8) / 0x1000000;
  const out: Plain[] = [];
  let videoSeq = 0xfff0;
  let audioSeq = 0xfff8;
  for (let i = 0; i < count; i++) {
    const video = rand() < 0.6;
    const header = video
      ? new RtpHeader({
          payloadType: 96,
          ssrc: VIDEO_SSRC,
          sequenceNumber: videoSeq++ & 0xffff,
          timestamp: 90000 + i * 3000,
          marker: rand() < 0.2,
          extensionProfile: 0xbede,
          extensions: [{ id: 3, payload: Buffer.from([1, 2, 3]) }],
        })
      : new RtpHeader({
          payloadType: 111,
          ssrc: AUDIO_SSRC,
          sequenceNumber: audioSeq++ & 0xffff,
          timestamp: 48000 + i * 960,
          csrc: i % 5 === 0 ? [0xaabbccdd] : [],
        });
    const payload = crypto.randomBytes(20 + Math.floor(rand() * 1181));
    out.push({ header, payload, packet: Buffer.concat([header.serialize(header.serializeSize), payload]) });
  }
  return out;
}

export function keys() {
  return {
    localMasterKey: crypto.randomBytes(16),
    localMasterSalt: crypto.randomBytes(14),
    remoteMasterKey: crypto.randomBytes(16),
    remoteMasterSalt: crypto.randomBytes(14),
  };
}

export type Keys = ReturnType<typeof keys>;
export type Profile = "cm" | "gcm";

/** GCM's master salt is 12 bytes (RFC 7714 §12). */
const forProfile = (k: Keys, profile: Profile): Keys =>
  profile === "cm" ? k : { ...k, localMasterSalt: k.localMasterSalt.subarray(0, 12), remoteMasterSalt: k.remoteMasterSalt.subarray(0, 12) };
const profileId = (profile: Profile) => (profile === "cm" ? ProtectionProfileAes128CmHmacSha1_80 : ProtectionProfileAeadAes128Gcm);

export function weriftSession(k: Keys, profile: Profile = "cm") {
  return new SrtpSession({ keys: forProfile(k, profile), profile: profileId(profile) });
}

/** A werift session on the other end: its remote keys are our local ones. */
export function weriftReceiver(key: Keys, profile: Profile = "cm") {
  const k = forProfile(key, profile);
  return new SrtpSession({
    keys: {
      localMasterKey: k.remoteMasterKey,
      localMasterSalt: k.remoteMasterSalt,
      remoteMasterKey: k.localMasterKey,
      remoteMasterSalt: k.localMasterSalt,
    },
    profile: profileId(profile),
  });
}


/** RFC 3711 B.2's session key and salt (the auth key is not part of the vector). */
export const RFC3711_B2_KEYS = {
  sessionKey: hex("2B7E151628AED2A6ABF7158809CF4F3C"),
  sessionSalt: hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD"),
  authKey: Buffer.alloc(20),
};

/**
 * RFC 3711 B.2 AES-CM keystream through a protector made with RFC3711_B2_KEYS: SSRC 0, SEQ 0, ROC 0 and an all-zero
 * payload, so the encrypted payload is the keystream itself.
 */
export function assertRfc3711B2Keystream(protectInto: (packet: Buffer, length: number, out: Buffer, outOffset: number) => number): void {
  const blocks = 0xff02;
  const packet = Buffer.alloc(12 + blocks * 16);
  packet[0] = 0x80;
  const out = Buffer.alloc(packet.length + 10);
  assert.equal(protectInto(packet, packet.length, out, 0), packet.length + 10);
  const ks = (block: number) => out.subarray(12 + block * 16, 12 + block * 16 + 16).toString("hex");
  assert.equal(ks(0), "e03ead0935c95e80e166b16dd92b4eb4");
  assert.equal(ks(1), "d23513162b02d0f72a43a2fe4a5f97ab");
  assert.equal(ks(2), "41e95b3bb0a2e8dd477901e4fca894c0");
  assert.equal(ks(0xfeff), "ec8cdf7398607cb0f2d21675ea9ea1e4");
  assert.equal(ks(0xff00), "362b7c3c6773516318a077d7fc5073ae");
  assert.equal(ks(0xff01), "6a2cc3787889374fbeb4c81b17ba6c44");
}
