import { test } from "node:test";
import assert from "node:assert/strict";
import { shapeOffer, finishAnswer, offeredVideoCodecs, OfferError, withoutRemoteSsrcs } from "../../sidecar/src/webrtc/offer.ts";

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
  assert.equal(shaped.videoPt, 103);
  assert.equal(shaped.opusPt, 111);
  assert.match(shaped.sdp, /^m=video 9 UDP\/TLS\/RTP\/SAVPF 103 104$/m);
  assert.match(shaped.sdp, /^m=audio 9 UDP\/TLS\/RTP\/SAVPF 111$/m);
  assert.doesNotMatch(shaped.sdp, /VP8|G722|apt=96|packetization-mode=0/);
  assert.match(shaped.sdp, /a=mid:0/);
});

test("a main-profile file prefers the main-profile payload type", () => {
  assert.equal(shapeOffer(offer, 77).videoPt, 114);
});

test("offers without H.264 or Opus leave those kinds unselected, garbage is refused", () => {
  const noH264 = offer.replace(/a=rtpmap:(103|107|108|114) H264/g, "a=rtpmap:$1 VP9");
  assert.equal(shapeOffer(noH264, 66).videoPt, undefined);
  assert.throws(() => shapeOffer("hello", 66), OfferError);
  assert.throws(() => shapeOffer("v=0\r\ns=-\r\n", 66), OfferError);
});

// Firefox ESR without its OpenH264 plugin: VP8, VP9, AV1 and their rtx/ulpfec/red, no H.264.
const firefoxNoH264 = offer
  .replace(/^m=video .*$/m, "m=video 9 UDP/TLS/RTP/SAVPF 120 124 121 125 99 100 123 122 119")
  .replace(/a=rtpmap:96 VP8\/90000\r\na=rtcp-fb:96 nack\r\n[\s\S]*?(?=m=audio)/, [
    "a=rtpmap:120 VP8/90000", "a=rtcp-fb:120 nack", "a=rtcp-fb:120 nack pli", "a=rtcp-fb:120 ccm fir", "a=fmtp:120 max-fs=12288;max-fr=60",
    "a=rtpmap:124 rtx/90000", "a=fmtp:124 apt=120",
    "a=rtpmap:121 VP9/90000", "a=fmtp:121 max-fs=12288;max-fr=60",
    "a=rtpmap:125 rtx/90000", "a=fmtp:125 apt=121",
    "a=rtpmap:99 AV1/90000", "a=rtpmap:100 rtx/90000", "a=fmtp:100 apt=99",
    "a=rtpmap:123 ulpfec/90000", "a=rtpmap:122 red/90000", "a=rtpmap:119 rtx/90000", "a=fmtp:119 apt=122",
  ].join("\r\n") + "\r\n");

test("VP8 is chosen only where asked for: a viewer of a VP8 send, a publisher without H.264; H.264 first otherwise", () => {
  assert.deepEqual([...offeredVideoCodecs(offer)], ["h264", "vp8"]);
  assert.deepEqual([...offeredVideoCodecs(firefoxNoH264)], ["vp8"]);
  assert.deepEqual([...offeredVideoCodecs(offer.replace(/^m=video[\s\S]*?(?=m=audio)/m, ""))], []);
  const vp8 = shapeOffer(firefoxNoH264, 66, "receive", ["vp8"]);
  assert.equal(vp8.videoCodec, "vp8");
  assert.equal(vp8.videoPt, 120);
  assert.match(vp8.sdp, /^m=video 9 UDP\/TLS\/RTP\/SAVPF 120 124$/m);
  assert.doesNotMatch(vp8.sdp, /VP9|AV1|ulpfec|apt=121/);
  // A Chromium offer has both: a publisher's gets H.264, a VP8 file's viewer VP8.
  assert.equal(shapeOffer(offer, 66, "receive", ["h264", "vp8"]).videoCodec, "h264");
  assert.equal(shapeOffer(offer, 66, "receive", ["vp8"]).videoPt, 96);
  assert.equal(shapeOffer(firefoxNoH264, 66, "receive", ["h264"]).videoPt, undefined);
  assert.equal(shapeOffer(firefoxNoH264, 66, "receive", ["h264", "vp8"]).videoCodec, "vp8");
  // VP9/AV1 only: nothing of ours.
  const vp9Only = firefoxNoH264.replace(/VP8\/90000/, "VP9/90000");
  assert.deepEqual([...offeredVideoCodecs(vp9Only)], []);
  assert.equal(shapeOffer(vp9Only, 66, "receive", ["h264", "vp8"]).videoPt, undefined);
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
  assert.equal(shapeOffer(sending, 66, "send").videoPt, 103);
  assert.throws(() => shapeOffer(sending, 66, "receive"), /receives nothing/);
  // No direction attribute at all is sendrecv: it does both.
  const both = offer.replace(/a=recvonly\r\n/g, "");
  assert.equal(shapeOffer(both, 66, "send").videoPt, 103);
  assert.equal(shapeOffer(both, 66, "receive").videoPt, 103);
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
