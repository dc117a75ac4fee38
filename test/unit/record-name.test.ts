import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { checkRecordName } from "@edge-vod/shared";
import { MAX_RECORD_NAME_BYTES, renderRecordName, reserveRecordPath, truncateUtf8 } from "../../sidecar/src/record/record-name.ts";

const DEFAULT_TEMPLATE = "stream-{mediaSessionId}-{login}";
const ID = "5a072377-73c1-4caf-abd3-3b4d7f0a9e21";
const base = { streamName: "test", mediaSessionId: ID, login: "", startTimeMs: 1_700_000_000_123 };

const bytes = (s: string) => Buffer.byteLength(s, "utf8");

/** Everything a record name must be on any file system. */
function assertSafe(name: string): void {
  assert.ok(name.endsWith(".mp4"), `${name}: no .mp4`);
  assert.ok(bytes(name) <= MAX_RECORD_NAME_BYTES, `${name}: ${bytes(name)} bytes`);
  assert.ok(name.length > ".mp4".length, "empty base");
  assert.ok(!name.startsWith("."), `${name}: hidden`);
  // eslint-disable-next-line no-control-regex
  assert.doesNotMatch(name, /[\u0000-\u001f\u007f-\u009f/\\<>:"|?*]/);
  assert.doesNotMatch(name, /[\s.]\.mp4$/u, `${name}: trailing dot or space before the extension`);
  assert.doesNotMatch(name, /\p{Cs}/u, `${name}: lone surrogate`);
  // The download route serves every name this makes.
  assert.equal(checkRecordName(name), null, name);
  // Round-trips through UTF-8 unchanged: no sequence was cut.
  assert.equal(Buffer.from(name, "utf8").toString("utf8"), name);
  assert.equal(new TextDecoder("utf-8", { fatal: true }).decode(Buffer.from(name, "utf8")), name);
}

test("the WCS default template with an empty login gives stream-<id>-.mp4", () => {
  assert.equal(renderRecordName(DEFAULT_TEMPLATE, base), `stream-${ID}-.mp4`);
  assert.equal(renderRecordName(DEFAULT_TEMPLATE, { ...base, login: "alice" }), `stream-${ID}-alice.mp4`);
});

test("every placeholder renders; end-dependent ones are empty until known", () => {
  const tpl = "{streamName}|{mediaSessionId}|{login}|{startTime}|{startTimeMillis}|{endTime}|{endTimeMillis}|{duration}|{sessionId}|{audioCodec}|{videoCodec}";
  // `|` is not allowed in names, so the separators come out as `_`.
  const full = renderRecordName(tpl.replaceAll("|", "~"), {
    ...base,
    login: "bob",
    endTimeMs: 1_700_000_065_456,
    durationMs: 65_333,
    sessionId: "c2Vzc2lvbg==",
    audioCodec: "opus",
    videoCodec: "H264",
  });
  assert.equal(full, `test~${ID}~bob~1700000000123~1700000000123~1700000065456~1700000065456~65333~c2Vzc2lvbg==~opus~H264.mp4`);
  const partial = renderRecordName("{streamName}-{startTime}-{endTime}-{duration}", base);
  assert.equal(partial, "test-1700000000123--.mp4");
  // Fractional times are rounded to whole ms.
  assert.equal(renderRecordName("{startTime}", { ...base, startTimeMs: 10.6 }), "11.mp4");
});

test("unknown placeholders stay literal; values are never re-scanned for placeholders", () => {
  assert.equal(renderRecordName("{streamName}-{nosuch}", base), "test-{nosuch}.mp4");
  assert.equal(renderRecordName("{streamName}", { ...base, streamName: "{login}{startTime}" }), "{login}{startTime}.mp4");
  assert.equal(renderRecordName("{constructor}-{toString}", base), "{constructor}-{toString}.mp4");
});

test("a template ending in .mp4 does not get a second extension", () => {
  assert.equal(renderRecordName("{streamName}.mp4", base), "test.mp4");
  assert.equal(renderRecordName("{streamName}.MP4", base), "test.mp4");
});

test("stream names cannot make paths, hidden files or unsafe names", () => {
  const cases: Array<[string, string]> = [
    ["../../etc/passwd", "___.._etc_passwd.mp4"],
    ["..", "__.mp4"],
    [".", "_.mp4"],
    [".hidden", "_hidden.mp4"],
    ["a/b\\c", "a_b_c.mp4"],
    ["/abs", "_abs.mp4"],
    ["nul\u0000byte", "nul_byte.mp4"],
    ["tab\tnew\nline\r\u007f\u0085", "tab_new_line___.mp4"],
    ['w<i>n:d"o|w?s*', "w_i_n_d_o_w_s_.mp4"],
    ["trailing dots...", "trailing dots.mp4"],
    ["trailing spaces   ", "trailing spaces.mp4"],
    ["  leading", "leading.mp4"],
    ["bidi\u202egpj.exe", "bidi_gpj.exe.mp4"],
    ["a..b", "a..b.mp4"],
    ["CON", "_CON.mp4"],
    ["com1.x", "_com1.x.mp4"],
    ["console", "console.mp4"],
  ];
  for (const [streamName, expected] of cases) {
    const name = renderRecordName("{streamName}", { ...base, streamName });
    assert.equal(name, expected, JSON.stringify(streamName));
    assertSafe(name);
  }
});

test("emoji and other Unicode letters are kept (NFC)", () => {
  const name = renderRecordName("{streamName}-{login}", { ...base, streamName: "Ёлка 🎄 👨‍👩‍👧 日本語", login: "Zoë" });
  assert.equal(name, "Ёлка 🎄 👨‍👩‍👧 日本語-Zoë.mp4");
  assertSafe(name);
  // NFD input comes out composed.
  assert.equal(renderRecordName("{streamName}", { ...base, streamName: "e\u0301" }), "\u00e9.mp4");
});

test("lone surrogates are replaced, never written as invalid UTF-8", () => {
  const name = renderRecordName("{streamName}", { ...base, streamName: "a\ud83db\udc00c" });
  assert.equal(name, "a_b_c.mp4");
  assertSafe(name);
});

test("names that render empty fall back to stream-<mediaSessionId>", () => {
  assert.equal(renderRecordName("{streamName}", { ...base, streamName: "" }), `stream-${ID}.mp4`);
  assert.equal(renderRecordName("{login}", base), `stream-${ID}.mp4`);
  assert.equal(renderRecordName("{streamName}", { ...base, streamName: " . . " }), "_.mp4");
  assert.equal(renderRecordName("", base), `stream-${ID}.mp4`);
  assert.equal(renderRecordName("{login}", { ...base, mediaSessionId: "../x" }), "stream-.._x.mp4");
});

test("10 kB names are cut to 255 bytes between characters", () => {
  const inputs = [
    "a".repeat(10_000),
    "я".repeat(5_000),
    "日本".repeat(2_000),
    "🎄".repeat(3_000),
    "👨‍👩‍👧‍👦".repeat(500),
    "x" + "\u0301".repeat(10_000), // one grapheme of 20 kB: cut between code points
    "ab" + "🎄".repeat(3_000), // 4-byte characters off the 4-byte grid
    "a".repeat(250) + ".....🎄", // the cut lands on dots, which are then trimmed
  ];
  for (const streamName of inputs) {
    const name = renderRecordName("{streamName}", { ...base, streamName });
    assertSafe(name);
    assert.ok(bytes(name) >= MAX_RECORD_NAME_BYTES - 4 - 30 || streamName.includes("....."), `${bytes(name)}: cut too much`);
    assert.ok(streamName.startsWith(name.slice(0, 10)));
  }
  // Emoji sequences are not split: the cut name holds only whole families.
  const family = "👨‍👩‍👧‍👦";
  const cut = renderRecordName("{streamName}", { ...base, streamName: family.repeat(500) }).slice(0, -4);
  assert.equal(cut.replaceAll(family, ""), "");
  assert.equal(renderRecordName("{streamName}", { ...base, streamName: "a".repeat(250) + ".....🎄" }), "a".repeat(250) + ".mp4");
});

test("truncateUtf8 never exceeds the limit and never splits a code point", () => {
  for (let max = 0; max < 20; max++) {
    const out = truncateUtf8("a🎄bé日" + "🎄".repeat(5), max);
    assert.ok(bytes(out) <= max);
    assert.doesNotMatch(out, /\p{Cs}/u);
  }
  assert.equal(truncateUtf8("short", 255), "short");
});

let dir: string;
before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "record-name-"));
});
after(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

test("reserveRecordPath creates the file exclusively and numbers collisions", async () => {
  const a = await reserveRecordPath(dir, "rec.mp4");
  const b = await reserveRecordPath(dir, "rec.mp4");
  const c = await reserveRecordPath(dir, "rec.mp4");
  assert.deepEqual([a.name, b.name, c.name], ["rec.mp4", "rec-1.mp4", "rec-2.mp4"]);
  assert.equal(a.path, path.join(dir, "rec.mp4"));
  for (const r of [a, b, c]) assert.equal((await fs.stat(r.path)).size, 0);
  // Concurrent reservations of one name all get different files.
  const many = await Promise.all(Array.from({ length: 20 }, () => reserveRecordPath(dir, "busy.mp4")));
  assert.equal(new Set(many.map((r) => r.name)).size, 20);
  assert.ok(many.some((r) => r.name === "busy.mp4") && many.some((r) => r.name === "busy-19.mp4"));
});

test("reserveRecordPath does not write through a planted symlink", async () => {
  const target = path.join(dir, "victim.txt");
  await fs.writeFile(target, "keep");
  await fs.symlink(target, path.join(dir, "planted.mp4"));
  const r = await reserveRecordPath(dir, "planted.mp4");
  assert.equal(r.name, "planted-1.mp4");
  assert.equal(await fs.readFile(target, "utf8"), "keep");
});

test("collision suffixes keep a 255-byte name within 255 bytes", async () => {
  const long = renderRecordName("{streamName}", { ...base, streamName: "abc" + "🎄".repeat(300) });
  assert.equal(bytes(long), 255);
  const names: string[] = [];
  for (let i = 0; i < 12; i++) names.push((await reserveRecordPath(dir, long)).name);
  assert.equal(new Set(names).size, 12);
  for (const n of names) assertSafe(n);
  assert.ok(names[11]!.endsWith("-11.mp4"));
  const entries = await fs.readdir(dir);
  for (const n of names) assert.ok(entries.includes(n));
});

test("reserveRecordPath creates a missing folder and makes unsafe names safe", async () => {
  const sub = path.join(dir, "new", "deeper");
  const r = await reserveRecordPath(sub, "../escape.mp4");
  assert.equal(r.name, "___escape.mp4");
  assert.equal(path.dirname(r.path), sub);
  await fs.access(r.path);
});
