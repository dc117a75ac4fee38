// The bucket's settings (S3_*) as the sidecar reads them from its environment.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError, loadConfig } from "../../sidecar/src/config.ts";

const SECRET = { SIDECAR_SECRET: "storage-config-test-secret" };
const S3 = {
  S3_ENDPOINT: "http://127.0.0.1:9000",
  S3_BUCKET: "media",
  S3_ACCESS_KEY_ID: "AKIDEXAMPLE",
  S3_SECRET_ACCESS_KEY: "wJalrXUtnFEMI/K7MDENG",
};

const storageOf = (env: Record<string, string>) => loadConfig({ ...SECRET, ...env }).storage;

function refused(env: Record<string, string>, variable: string) {
  assert.throws(
    () => storageOf(env),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, `${JSON.stringify(env)}: ${String(err)}`);
      assert.match(err.message, new RegExp(`\\b${variable}\\b`), JSON.stringify(env));
      return true;
    },
  );
}

test("without S3_ENDPOINT there is no storage, whatever else is set", () => {
  assert.equal(storageOf({}), undefined);
  const { S3_ENDPOINT: _, ...rest } = S3;
  assert.equal(storageOf(rest), undefined);
  assert.equal(storageOf({ ...S3, S3_ENDPOINT: "  " }), undefined);
});

test("a full S3 configuration, and the defaults of what is left out", () => {
  assert.deepEqual(storageOf(S3), {
    endpoint: "http://127.0.0.1:9000",
    bucket: "media",
    region: "us-east-1",
    accessKeyId: "AKIDEXAMPLE",
    secretAccessKey: "wJalrXUtnFEMI/K7MDENG",
    forcePathStyle: false,
    prefix: "",
    blockBytes: 1024 * 1024,
    cacheBytes: 256 * 1024 * 1024,
    timeoutMs: 10_000,
  });
  assert.deepEqual(
    storageOf({ ...S3, S3_REGION: "eu-central-1", S3_FORCE_PATH_STYLE: "true", S3_PREFIX: "vod", S3_BLOCK_KB: "256", S3_CACHE_MB: "64", S3_TIMEOUT_MS: "2500" }),
    {
      endpoint: "http://127.0.0.1:9000",
      bucket: "media",
      region: "eu-central-1",
      accessKeyId: "AKIDEXAMPLE",
      secretAccessKey: "wJalrXUtnFEMI/K7MDENG",
      forcePathStyle: true,
      prefix: "vod/",
      blockBytes: 256 * 1024,
      cacheBytes: 64 * 1024 * 1024,
      timeoutMs: 2500,
    },
  );
});

test("S3_PREFIX: a folder path, its leading slash dropped and a trailing one added", () => {
  const prefix = (p: string) => storageOf({ ...S3, S3_PREFIX: p })?.prefix;
  assert.equal(prefix("vod"), "vod/");
  assert.equal(prefix("vod/"), "vod/");
  assert.equal(prefix("/vod"), "vod/");
  assert.equal(prefix("//media/vod/"), "media/vod/");
  assert.equal(prefix(""), "");
  for (const bad of ["../x", "a/../b", "a//b", "./vod", "vod//"]) refused({ ...S3, S3_PREFIX: bad }, "S3_PREFIX");
});

test("S3_FORCE_PATH_STYLE is on for 1, true and yes only", () => {
  const style = (v: string) => storageOf({ ...S3, S3_FORCE_PATH_STYLE: v })?.forcePathStyle;
  assert.deepEqual(["1", "true", "TRUE", "yes"].map(style), [true, true, true, true]);
  assert.deepEqual(["0", "false", "no", ""].map(style), [false, false, false, false]);
});

test("an S3 endpoint without its bucket or keys names what is missing", () => {
  for (const key of ["S3_BUCKET", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"] as const) {
    refused({ ...S3, [key]: "" }, key);
    const { [key]: _, ...rest } = S3;
    refused(rest, key);
  }
  refused({ ...S3, S3_BUCKET: "no/slashes" }, "S3_BUCKET");
});

test("a file:/// endpoint is a folder and needs no bucket or keys", () => {
  assert.deepEqual(storageOf({ S3_ENDPOINT: "file:///tmp/x", S3_PREFIX: "vod" }), {
    endpoint: "file:///tmp/x",
    bucket: "",
    region: "us-east-1",
    accessKeyId: "",
    secretAccessKey: "",
    forcePathStyle: false,
    prefix: "vod/",
    blockBytes: 1024 * 1024,
    cacheBytes: 256 * 1024 * 1024,
    timeoutMs: 10_000,
  });
});

test("an endpoint that is not an http(s) or file URL is refused", () => {
  for (const endpoint of ["not a url", "127.0.0.1:9000", "minio:9000", "ftp://127.0.0.1/", "s3://bucket"]) refused({ ...S3, S3_ENDPOINT: endpoint }, "S3_ENDPOINT");
});

test("block, cache and timeout sizes out of range are refused by name", () => {
  refused({ ...S3, S3_BLOCK_KB: "32" }, "S3_BLOCK_KB");
  refused({ ...S3, S3_BLOCK_KB: "1.5" }, "S3_BLOCK_KB");
  refused({ ...S3, S3_CACHE_MB: "-1" }, "S3_CACHE_MB");
  refused({ ...S3, S3_TIMEOUT_MS: "100" }, "S3_TIMEOUT_MS");
  // No cache at all is a setting, not a mistake.
  assert.equal(storageOf({ ...S3, S3_CACHE_MB: "0" })?.cacheBytes, 0);
});

test("SIDECAR_SECRET is still required with a bucket", () => {
  assert.throws(() => loadConfig({ ...S3, SIDECAR_SECRET: "short" }), (err: unknown) => err instanceof ConfigError && /SIDECAR_SECRET/.test(err.message));
});
