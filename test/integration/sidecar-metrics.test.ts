// `GET /metrics` on the real sidecar: Prometheus text with the process metrics and edge_vod_* counts that follow a
// werift viewer's play, refusals and failures; no HMAC signature needed (Prometheus cannot sign), a bearer
// METRICS_TOKEN when one is configured. The sidecar's stream events reach the "edge" here signed.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { SIDECAR_PATHS, type PlayResponse, type StreamEvent } from "@edge-vod/shared";
import { startSidecar, type SidecarProcess } from "../helpers/sidecar-process.ts";
import { signedFetch, startStandInEdge } from "../helpers/signed-fetch.ts";
import { createWeriftViewer } from "../helpers/werift-viewer.ts";

const secret = randomBytes(24).toString("hex");
const TOKEN = randomBytes(16).toString("hex");
let open: SidecarProcess;
let guarded: SidecarProcess;

/** The edge's events intake, as far as these tests need it: every event, and whether its signature verified. */
const events: Array<{ event: StreamEvent; signed: boolean }> = [];
let edge: Awaited<ReturnType<typeof startStandInEdge>>;
let eventsUrl: string;

before(async () => {
  edge = await startStandInEdge(secret, (r) => events.push({ event: JSON.parse(r.body.toString()) as StreamEvent, signed: r.verified.ok }));
  eventsUrl = `${edge.url}/events`;
  [open, guarded] = await Promise.all([
    startSidecar({ secret }),
    startSidecar({ secret, env: { METRICS_TOKEN: TOKEN, ICE_TIMEOUT_MS: "1000" } }),
  ]);
});

after(async () => {
  await Promise.all([open?.stop(), guarded?.stop()]);
  await edge?.close();
});

async function scrape(sidecar: SidecarProcess, token?: string): Promise<string> {
  const res = await fetch(`${sidecar.url}/metrics`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
  return res.text();
}

/** The value of one series (name with its labels, exactly as exposed), or undefined when it is not there. */
function value(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

function play(sidecar: SidecarProcess, name: string, sdp: string, mediaSessionId = randomUUID()): Promise<PlayResponse> {
  return signedFetch(secret, sidecar.url + SIDECAR_PATHS.play, {
    method: "POST",
    body: JSON.stringify({ sessionRef: "metrics", eventsUrl, mediaSessionId, name, sdp }),
  }).then((r) => r.json() as Promise<PlayResponse>);
}

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test("without METRICS_TOKEN, /metrics is open and needs no signature; it has process and edge_vod_ metrics", async () => {
  const text = await scrape(open);
  assert.equal(value(text, 'edge_vod_viewers{kind="vod"}'), 0);
  assert.equal(value(text, 'edge_vod_viewers{kind="vod-live"}'), 0);
  assert.equal(value(text, 'edge_vod_viewers{kind="live"}'), 0);
  assert.equal(value(text, "edge_vod_publishers"), 0);
  assert.equal(value(text, "edge_vod_rtp_packets_sent_total"), 0);
  assert.equal(value(text, 'edge_vod_plays_total{kind="vod"}'), 0);
  assert.ok((value(text, "process_resident_memory_bytes") ?? 0) > 0, "default process metrics");
  assert.ok(value(text, "nodejs_eventloop_lag_seconds") !== undefined, "event loop lag");
  assert.match(text, /# TYPE edge_vod_rtp_bytes_sent_total counter/);
});

test("a werift viewer of vod://sample.mp4 shows as a vod viewer, with RTP packets and bytes sent; its events come signed", async () => {
  const viewer = await createWeriftViewer();
  try {
    const answer = await play(open, "vod://sample.mp4", viewer.offerSdp);
    assert.ok(answer.ok, JSON.stringify(answer));
    await viewer.setAnswer(answer.sdp);
    await waitFor("video packets at the viewer", () => viewer.received.videoPackets > 30);
    const text = await scrape(open);
    assert.equal(value(text, 'edge_vod_viewers{kind="vod"}'), 1);
    assert.equal(value(text, 'edge_vod_plays_total{kind="vod"}'), 1);
    const packets = value(text, "edge_vod_rtp_packets_sent_total") ?? 0;
    const bytes = value(text, "edge_vod_rtp_bytes_sent_total") ?? 0;
    assert.ok(packets >= viewer.received.videoPackets, `${packets} packets sent, ${viewer.received.videoPackets} video packets received`);
    assert.ok(bytes > packets * 12, `${bytes} bytes for ${packets} packets`);
    await waitFor("PLAYING at the edge", () => events.some((e) => e.event.status === "PLAYING"));
    assert.ok(events.every((e) => e.signed), "every event verifies against the shared secret");
  } finally {
    await viewer.close();
  }
});

test("a play of a missing file is counted as a refusal with its info; unsigned control requests as refused", async () => {
  const answer = await play(open, "vod://no-such-file.mp4", "v=0\r\n");
  assert.deepEqual(answer, { ok: false, info: "File not found" });
  const unsigned = await fetch(`${open.url}${SIDECAR_PATHS.health}`, { headers: { authorization: `Bearer ${secret}` } });
  assert.equal(unsigned.status, 401);
  const text = await scrape(open);
  assert.equal(value(text, 'edge_vod_play_refusals_total{info="File not found"}'), 1);
  assert.equal(value(text, 'edge_vod_control_refused_total{reason="Unsigned request"}'), 1);
});

test("with METRICS_TOKEN: no or a wrong token (or only a signature) is 401; the token opens it; failures by info", async () => {
  for (const headers of [{}, { authorization: "Bearer wrong-token" }, { authorization: TOKEN }] as Array<Record<string, string>>) {
    const res = await fetch(`${guarded.url}/metrics`, { headers });
    assert.equal(res.status, 401, JSON.stringify(headers));
    assert.deepEqual(await res.json(), { error: "Unauthorized" });
  }
  const signedOnly = await signedFetch(secret, `${guarded.url}/metrics`);
  assert.equal(signedOnly.status, 401);

  // A viewer that never answers: ICE times out (ICE_TIMEOUT_MS=1000) and the stream fails.
  const viewer = await createWeriftViewer();
  try {
    const mediaSessionId = randomUUID();
    const answer = await play(guarded, "vod://sample.mp4", viewer.offerSdp, mediaSessionId);
    assert.ok(answer.ok, JSON.stringify(answer));
    await waitFor("FAILED", () => events.some((e) => e.event.mediaSessionId === mediaSessionId && e.event.status === "FAILED"));
  } finally {
    await viewer.close();
  }
  const text = await scrape(guarded, TOKEN);
  assert.equal(value(text, 'edge_vod_stream_failures_total{info="Failed by ICE timeout"}'), 1);
  assert.equal(value(text, 'edge_vod_viewers{kind="vod"}'), 0);
});
