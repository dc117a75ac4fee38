import { test } from "node:test";
import assert from "node:assert/strict";
import { shapeOffer, finishAnswer, OfferError, withoutRemoteSsrcs } from "../../sidecar/src/webrtc/offer.ts";

// A Chromium recvonly offer as the Web SDK sends it (no candidates), its ICE and DTLS lines shortened.
const offer = [
  "v=0", "o=- 1 2 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE 0 1",
  "a=ice-ufrag:abcd", "a=ice-pwd:abcdefghijklmnopqrstuvwx", "a=fingerprint:sha-256 AA:BB",
  "m=video 9 UDP/TLS/RTP/SAVPF 96 97 103 104 107 108 109 114",
  "c=IN IP4 0.0.0.0", "a=mid:0", "a=recvonly", "a=rtcp-mux",
  "a=rtpmap:96 VP8/90000", "a=rtcp-fb:96 nack",
  "a=rtpmap:97 rtx/90000", "a=fmtp:97 apt=96",
  "a=rtpmap:103 H264/90000", "a=fmtp:103 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
  "a=rtpmap:104 rtx/90000", "a=fmtp:104 apt=103",
  "a=rtpmap:107 H264/90000", "a=fmtp:107 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f",
  "a=rtpmap:108 H264/90000", "a=rtcp-fb:108 nack pli", "a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
  "a=rtpmap:109 rtx/90000", "a=fmtp:109 apt=108",
  "a=rtpmap:114 H264/90000", "a=fmtp:114 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f",
  "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9",
  "c=IN IP4 0.0.0.0", "a=mid:1", "a=recvonly",
  "a=rtpmap:111 opus/48000/2", "a=fmtp:111 minptime=10;useinbandfec=1",
  "a=rtpmap:63 red/48000/2", "a=rtpmap:9 G722/8000",
].join("\r\n") + "\r\n";

test("the offer is narrowed to one H.264 mode-1 payload type (with its rtx) and Opus", () => {
  const shaped = shapeOffer(offer, 66);
  assert.equal(shaped.h264Pt, 103);
  assert.equal(shaped.opusPt, 111);
  assert.match(shaped.sdp, /^m=video 9 UDP\/TLS\/RTP\/SAVPF 103 104$/m);
  assert.match(shaped.sdp, /^m=audio 9 UDP\/TLS\/RTP\/SAVPF 111$/m);
  assert.doesNotMatch(shaped.sdp, /VP8|G722|apt=96|packetization-mode=0/);
  assert.match(shaped.sdp, /a=mid:0/);
});

test("a main-profile file prefers the main-profile payload type", () => {
  assert.equal(shapeOffer(offer, 77).h264Pt, 114);
});

test("offers without H.264 or Opus leave those kinds unselected, garbage is refused", () => {
  const noH264 = offer.replace(/a=rtpmap:(103|107|108|114) H264/g, "a=rtpmap:$1 VP9");
  assert.equal(shapeOffer(noH264, 66).h264Pt, undefined);
  assert.throws(() => shapeOffer("hello", 66), OfferError);
  assert.throws(() => shapeOffer("v=0\r\ns=-\r\n", 66), OfferError);
});

test("a malformed offer is refused before its codecs are looked at: media lines, ICE and DTLS attributes", () => {
  assert.throws(() => shapeOffer("v=0\r\nm=audio gibberish\r\n", 66), /malformed media line/);
  assert.throws(() => shapeOffer(offer.replace(/^m=video .*$/m, "m=video 9 X"), 66), /malformed media line/);
  assert.throws(() => shapeOffer(offer.replace(/^a=fingerprint:.*\r\n/m, ""), 66), /no a=fingerprint/);
  assert.throws(() => shapeOffer(offer.replace(/^a=ice-pwd:.*\r\n/m, ""), 66), /no a=ice-pwd/);
});

test("an offer must flow the way its request does: a viewer's receives, a publisher's sends", () => {
  assert.equal(shapeOffer(offer, 66, "receive").opusPt, 111);
  assert.throws(() => shapeOffer(offer, 66, "send"), /sends nothing/);
  const sending = offer.replace(/a=recvonly/g, "a=sendonly");
  assert.equal(shapeOffer(sending, 66, "send").h264Pt, 103);
  assert.throws(() => shapeOffer(sending, 66, "receive"), /receives nothing/);
  // No direction attribute at all is sendrecv: it does both.
  const both = offer.replace(/a=recvonly\r\n/g, "");
  assert.equal(shapeOffer(both, 66, "send").h264Pt, 103);
  assert.equal(shapeOffer(both, 66, "receive").h264Pt, 103);
});

test("the answer gets a public address on host candidates, loopback kept", () => {
  const answer = "m=video 0 UDP/TLS/RTP/SAVPF 103\r\na=candidate:1 1 udp 2116026367 192.0.2.2 40000 typ host generation 0\r\na=candidate:2 1 udp 2116026367 127.0.0.1 40001 typ host generation 0\r\n";
  const out = finishAnswer(answer, "203.0.113.7");
  assert.match(out, /^m=video 9 /m);
  assert.match(out, / 203\.0\.113\.7 40000 typ host/);
  assert.match(out, / 127\.0\.0\.1 40001 typ host/);
  assert.equal(finishAnswer(answer, undefined).includes("192.0.2.2"), true);
});

test("a viewer's own SSRC lines are dropped from its offer, nothing else (its PLIs must reach our sender)", () => {
  const firefoxLike = ["v=0", "m=video 9 UDP/TLS/RTP/SAVPF 97", "a=recvonly", "a=ssrc:173995847 cname:{x}", "a=ssrc-group:FID 1 2", "a=rtcp-fb:97 nack pli", ""].join("\r\n");
  assert.equal(withoutRemoteSsrcs(firefoxLike), ["v=0", "m=video 9 UDP/TLS/RTP/SAVPF 97", "a=recvonly", "a=rtcp-fb:97 nack pli", ""].join("\r\n"));
});
