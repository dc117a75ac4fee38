import { test } from "node:test";
import assert from "node:assert/strict";
import { parseClientFrame, serverFrames, StreamStatus, Info, FRAME_LIMITS } from "@edge-vod/shared";

const play = (data: Record<string, unknown>) => JSON.stringify({ message: "playStream", data: [data] });

test("the SDK's own frames are accepted", () => {
  const connection = {
    message: "connection",
    data: [{ appKey: "defaultApp", mediaProviders: ["WebRTC", "MSE", "WSPlayer"], clientVersion: "2.0", clientOSVersion: "5.0", clientBrowserVersion: "Mozilla/5.0", msePacketizationVersion: 2 }],
  };
  const r = parseClientFrame(JSON.stringify(connection));
  assert.ok(r.ok);
  assert.equal(r.frame.message, "connection");
  assert.ok(parseClientFrame('{"message":"pong","data":[null]}').ok);
  const p = parseClientFrame(play({ mediaSessionId: "0d55dab0-e7a0", name: "vod://sample.mp4", published: false, hasVideo: true, hasAudio: true, status: "PENDING", record: false, width: 0, height: 0, mediaProvider: "WebRTC", sdp: "v=0\r\n", bitrate: 0, minBitrate: 0, maxBitrate: 0, quality: 0 }));
  assert.ok(p.ok);
  assert.ok(parseClientFrame(JSON.stringify({ message: "stopStream", data: [{ mediaSessionId: "x", name: "vod://a.mp4", published: false, hasVideo: true, hasAudio: true, status: "PLAYING", record: false }] })).ok);
});

test("bad frames are rejected with a reason", () => {
  const cases: [string, RegExp][] = [
    ["{not json", /not valid JSON/],
    ["[1,2]", /must be \{message/],
    ['{"message":"ping"}', /must be \{message/],
    ['{"message":"hack","data":[{}]}', /Unknown message 'hack'/],
    [play({ mediaSessionId: 5, name: "vod://a.mp4", sdp: "v=0" }), /Invalid 'playStream': mediaSessionId/],
    [play({ mediaSessionId: "m1", name: "vod://a.mp4" }), /Invalid 'playStream': sdp/],
    [play({ mediaSessionId: "m1", name: "vod://a.mp4", sdp: "" }), /sdp/],
    ["x".repeat(FRAME_LIMITS.maxFrameBytes + 1), /too large/],
  ];
  for (const [text, reason] of cases) {
    const r = parseClientFrame(text);
    assert.equal(r.ok, false, text.slice(0, 40));
    if (!r.ok) assert.match(r.reason, reason);
  }
});

test("a bad playStream still names its stream so it can be failed", () => {
  const r = parseClientFrame(play({ mediaSessionId: "m1", name: "vod://a.mp4" }));
  assert.equal(r.ok, false);
  if (!r.ok) {
    assert.equal(r.id, "m1");
    assert.equal(r.message, "playStream");
  }
});

test("server frames always carry a data array", () => {
  for (const text of [
    serverFrames.ping(),
    serverFrames.getUserData({ sessionId: "s" }),
    serverFrames.setRemoteSDP("m1", "v=0"),
    serverFrames.streamStatus({ mediaSessionId: "m1", name: "vod://x.mp4", published: false, status: StreamStatus.FAILED, info: Info.FILE_NOT_FOUND }),
    serverFrames.fail("bad"),
  ]) {
    const f = JSON.parse(text) as { message: string; data: unknown[] };
    assert.ok(Array.isArray(f.data), text);
  }
  assert.deepEqual(JSON.parse(serverFrames.setRemoteSDP("m1", "v=0")).data, ["m1", "v=0", true]);
  assert.equal(JSON.parse(serverFrames.streamStatus({ mediaSessionId: "m1", name: "n", published: false, status: StreamStatus.FAILED, info: Info.FILE_NOT_FOUND })).data[0].info, "File not found");
});
