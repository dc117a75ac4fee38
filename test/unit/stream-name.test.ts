import { test } from "node:test";
import assert from "node:assert/strict";
import { parseStreamName, checkFileName } from "@edge-vod/shared";

test("stream names parse into personal vod, shared vod-live and plain streams", () => {
  assert.deepEqual(parseStreamName("vod://sample.mp4"), { kind: "vod", file: "sample.mp4" });
  assert.deepEqual(parseStreamName("VOD://Sample.mp4"), { kind: "vod", file: "Sample.mp4" });
  assert.deepEqual(parseStreamName("vod-live://dir/sample.mp4"), { kind: "vod-live", file: "dir/sample.mp4" });
  assert.deepEqual(parseStreamName("stream1"), { kind: "live", name: "stream1" });
  assert.deepEqual(parseStreamName("dov://x.mp4"), { kind: "live", name: "dov://x.mp4" });
});

test("file names that could leave the media folder are refused", () => {
  assert.equal(checkFileName("sample.mp4"), null);
  assert.equal(checkFileName("sub/dir/sample.mp4"), null);
  assert.equal(checkFileName("файл с пробелом.mp4"), null);
  assert.equal(checkFileName(""), "empty");
  assert.equal(checkFileName("/etc/passwd"), "absolute");
  assert.equal(checkFileName("C:/x.mp4"), "absolute");
  assert.equal(checkFileName("../secret.mp4"), "traversal");
  assert.equal(checkFileName("a/../../b.mp4"), "traversal");
  assert.equal(checkFileName("a/./b.mp4"), "traversal");
  assert.equal(checkFileName("..\\x.mp4"), "bad-char");
  assert.equal(checkFileName("a\u0000.mp4"), "bad-char");
  assert.equal(checkFileName("a//b.mp4"), "bad-char");
  assert.equal(checkFileName("x".repeat(256) + ".mp4"), "too-long");
});
