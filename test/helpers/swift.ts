// Runs a real one-node OpenStack Swift (Debian's swift-proxy/-object/-container/-account) with its S3 API (s3api) on
// loopback, all inside a temporary folder, for integration tests against an S3 store that is not a mock.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import fsSync from "node:fs";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { AwsClient } from "aws4fetch";
import { freePort } from "./ports.ts";
import type { S3StoreConfig } from "../../sidecar/src/store/s3-store.ts";

/** The Python the swift packages are built for (their scripts' shebang), not whatever `python3` is first on PATH. */
const PYTHON = "/usr/bin/python3";
/** Enough of the tail to see why it failed, without holding every request log of a long run. */
const MAX_OUTPUT_CHARS = 256 * 1024;
const START_TIMEOUT_MS = 20_000;
const CREDENTIALS = { accessKeyId: "test:tester", secretAccessKey: "testing", region: "us-east-1" };
type Server = "proxy" | "object" | "container" | "account";
const SERVERS: Server[] = ["account", "container", "object", "proxy"];

// Swift's servers read swift.conf from /etc/swift only (their swift_dir setting is for the rings; there is no
// environment variable), so each Python starts with this prelude: it points that path into our folder before Swift
// reads it, which keeps a machine's own /etc/swift (another hash, another default policy) out of the test.
// PR_SET_PDEATHSIG makes the kernel kill the server when the test process dies, even by SIGKILL.
const PRELUDE = `import ctypes, os, runpy, sys
ctypes.CDLL(None).prctl(1, 9)
import swift.common.utils as u
u.SWIFT_CONF_FILE = sys.argv.pop(1)
`;
const SWIFT_CONF = "[swift-hash]\nswift_hash_path_suffix = edge-vod-test\n[storage-policy:0]\nname = Policy-0\n";
// Runs an installed server script (e.g. /usr/bin/swift-proxy-server <conf> -v) as if it had been started itself.
const RUN_SCRIPT = `${PRELUDE}sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
`;
// swift-ring-builder's own main(), called in one Python: nine separate runs cost ~0.65 s each.
// Then a probe of user xattrs on the device, where the object server keeps metadata: a file system without them
// should fail here, saying so, rather than with a 507 on the first PUT.
const BUILD_RINGS = `${PRELUDE}import xattr
from swift.cli.ringbuilder import main
d = sys.argv[1]
for spec in sys.argv[2:]:
    name, port = spec.split(":")
    for args in (["create", "0", "1", "1"], ["add", "r1z1-127.0.0.1:%s/d1" % port, "1"], ["rebalance"]):
        try:
            main(["swift-ring-builder", os.path.join(d, name + ".builder")] + args)
        except SystemExit as e:
            if e.code:
                raise
probe = os.path.join(d, "srv", "d1", "xattr-probe")
open(probe, "w").close()
xattr.setxattr(probe, "user.swift.metadata", b"probe")
os.unlink(probe)
`;

export interface SwiftServer {
  /** http://127.0.0.1:<port>: the proxy, with the S3 API at the root (path-style). */
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** Creates a bucket (S3 PUT /<bucket>, SigV4-signed) and resolves once it exists. */
  createBucket(name: string): Promise<void>;
  /** The env vars a sidecar needs to use `bucket` (S3_ENDPOINT, S3_BUCKET, ...), plus S3_PREFIX when given. */
  env(bucket: string, prefix?: string): Record<string, string>;
  /** An S3Store's settings for `bucket`, for tests that put and read objects themselves. */
  storeConfig(bucket: string, overrides?: Partial<S3StoreConfig>): S3StoreConfig;
  /** Stops the proxy only (an S3 outage), keeping data; startProxy() brings it back on the same port. */
  stopProxy(): Promise<void>;
  startProxy(): Promise<void>;
  /** Everything the servers printed, each line prefixed with its server (the tail when it is long). */
  output(): string;
  /** Stops every server and removes the temp folder. */
  stop(): Promise<void>;
}

function configs(tmp: string, ports: Record<Server, number>): Record<Server, string> {
  // workers = 0: one process per server, no forked workers to chase. user: Swift drops privileges to it (root in CI).
  // disable_fallocate: no preallocation, and so no "1% free" reserve check answering 507 on a nearly full CI disk.
  const common = (server: Server) => `[DEFAULT]
bind_ip = 127.0.0.1
bind_port = ${ports[server]}
workers = 0
user = ${os.userInfo().username}
swift_dir = ${tmp}
devices = ${path.join(tmp, "srv")}
mount_check = false
disable_fallocate = true
log_name = ${server}
`;
  // Each backend with healthcheck first, so readiness is the same GET for all four.
  const backend = (server: Server) => `${common(server)}
[pipeline:main]
pipeline = healthcheck ${server}-server
[filter:healthcheck]
use = egg:swift#healthcheck
[app:${server}-server]
use = egg:swift#${server}
`;
  // The pipeline s3api documents (less ratelimit and the auth-token middlewares); tempauth checks S3 signatures
  // against user_test_tester, so the access key is "test:tester". account_autocreate: the first PUT makes the account.
  // tempauth refuses to work (500 "Memcache required") without the cache filter, but no memcached has to run: the
  // client error-limits the refused server; its log level only keeps that complaint out of every request's log.
  const filters = ["catch_errors", "gatekeeper", "healthcheck", "proxy-logging", "cache", "listing_formats", "bulk",
    "s3api", "tempauth", "copy", "slo", "dlo", "versioned_writes", "symlink"];
  const eggs: Record<string, string> = { "proxy-logging": "proxy_logging" };
  const proxy = `${common("proxy")}
[pipeline:main]
pipeline = ${filters.join(" ")} proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
[filter:s3api]
use = egg:swift#s3api
location = ${CREDENTIALS.region}
[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = ${CREDENTIALS.secretAccessKey} .admin
[filter:cache]
use = egg:swift#memcache
set log_level = CRITICAL
${filters.filter((f) => !["s3api", "tempauth", "cache"].includes(f))
    .map((f) => `[filter:${f}]\nuse = egg:swift#${eggs[f] ?? f}\n`).join("")}`;
  return { proxy, object: backend("object"), container: backend("container"), account: backend("account") };
}

export async function startSwift(): Promise<SwiftServer> {
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-swift-"));
  const swiftConf = path.join(tmp, "swift.conf");
  const ports = {} as Record<Server, number>;
  // Asked for one after another, so make sure none was handed out twice.
  do for (const s of SERVERS) ports[s] = await freePort();
  while (new Set(Object.values(ports)).size < SERVERS.length);
  const endpoint = `http://127.0.0.1:${ports.proxy}`;

  let out = "";
  const append = (server: Server) => (chunk: Buffer) => {
    out += chunk.toString().replace(/^(?=.)/gm, `[${server}] `);
    if (out.length > MAX_OUTPUT_CHARS) out = out.slice(-MAX_OUTPUT_CHARS);
  };
  const children = new Map<Server, { child: ChildProcess; exited: Promise<void> }>();
  // Each server has its own process group (detached), in case one ever forks.
  const kill = (child: ChildProcess, signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      /* gone */
    }
  };
  // A crashed test run must not leave servers listening (PR_SET_PDEATHSIG covers the test process being killed).
  const onExit = () => {
    children.forEach(({ child }) => kill(child, "SIGKILL"));
    fsSync.rmSync(tmp, { recursive: true, force: true });
  };
  process.once("exit", onExit);

  const launch = (server: Server) => {
    const conf = path.join(tmp, `${server}-server.conf`);
    // -v: log to stderr too; otherwise Swift logs only to syslog (/dev/log, else UDP to localhost).
    const args = ["-c", RUN_SCRIPT, swiftConf, `/usr/bin/swift-${server}-server`, conf, "-v"];
    const child = spawn(PYTHON, args, { detached: true, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout!.on("data", append(server));
    child.stderr!.on("data", append(server));
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    children.set(server, { child, exited });
  };
  const halt = async (server: Server) => {
    const entry = children.get(server);
    if (!entry) return;
    children.delete(server);
    if (entry.child.exitCode === null && entry.child.signalCode === null) {
      kill(entry.child, "SIGTERM");
      const timer = setTimeout(() => kill(entry.child, "SIGKILL"), 5000);
      await entry.exited;
      clearTimeout(timer);
    }
  };
  const failure = (message: string) => new Error(`${message}\n--- swift output ---\n${out}`);
  const waitHealthy = async (servers: Server[]) => {
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (const server of servers) {
      for (;;) {
        const child = children.get(server)?.child;
        if (!child || child.exitCode !== null || child.signalCode !== null) throw failure(`${server} server exited`);
        try {
          const url = `http://127.0.0.1:${ports[server]}/healthcheck`;
          const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
          await res.body?.cancel();
          if (res.status === 200) break;
        } catch {
          /* not listening yet */
        }
        if (Date.now() > deadline) throw failure(`${server} server did not answer /healthcheck in time`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await Promise.all(SERVERS.map(halt));
    process.removeListener("exit", onExit);
    await fs.rm(tmp, { recursive: true, force: true }).catch(() => {});
  };

  try {
    await fs.mkdir(path.join(tmp, "srv", "d1"), { recursive: true });
    await fs.writeFile(swiftConf, SWIFT_CONF);
    for (const [server, text] of Object.entries(configs(tmp, ports))) {
      await fs.writeFile(path.join(tmp, `${server}-server.conf`), text);
    }
    const specs = (["object", "container", "account"] as const).map((s) => `${s}:${ports[s]}`);
    await promisify(execFile)(PYTHON, ["-c", BUILD_RINGS, swiftConf, tmp, ...specs]).catch((err) => {
      throw new Error(`building the rings failed: ${err.stderr || err.message}`);
    });
    SERVERS.forEach(launch);
    await waitHealthy(SERVERS);
  } catch (err) {
    await stop();
    throw err;
  }

  const client = new AwsClient({ ...CREDENTIALS, service: "s3", retries: 0 });
  return {
    endpoint,
    ...CREDENTIALS,
    async createBucket(name) {
      const res = await client.fetch(`${endpoint}/${name}`, { method: "PUT" });
      if (!res.ok) throw new Error(`PUT /${name}: ${res.status} ${await res.text()}`);
      await res.body?.cancel();
      // One replica, written before the PUT answers: a HEAD confirms it rather than waits for it.
      const head = await client.fetch(`${endpoint}/${name}`, { method: "HEAD" });
      if (!head.ok) throw new Error(`HEAD /${name} after creating it: ${head.status}`);
    },
    env(bucket, prefix) {
      return {
        S3_ENDPOINT: endpoint,
        S3_BUCKET: bucket,
        S3_REGION: CREDENTIALS.region,
        S3_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
        S3_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
        S3_FORCE_PATH_STYLE: "true",
        ...(prefix !== undefined ? { S3_PREFIX: prefix } : {}),
      };
    },
    storeConfig(bucket, overrides = {}) {
      return { endpoint, bucket, ...CREDENTIALS, forcePathStyle: true, timeoutMs: 10_000, ...overrides };
    },
    stopProxy: () => halt("proxy"),
    async startProxy() {
      if (stopped) throw new Error("swift was stopped");
      if (children.has("proxy")) return;
      launch("proxy");
      await waitHealthy(["proxy"]);
    },
    output: () => out,
    stop,
  };
}
