import { test } from "node:test";
import assert from "node:assert/strict";
import { parseClientFrame, serverFrames, StreamStatus, Info } from "@edge-vod/shared";

test("placeholder parse", () => {
  const r = parseClientFrame('{"message":"ping","data":[null]}');
  assert.equal(r.ok, true);
  assert.match(serverFrames.streamStatus({ mediaSessionId: "a", name: "b", published: false, status: StreamStatus.FAILED, info: Info.FILE_NOT_FOUND }), /File not found/);
});
