// How sessions (and the REST API, and downloads) see the sidecar registry without calling it per decision: a
// snapshot of one registry shard, held in module scope for REGISTRY_SNAPSHOT_MS and shared by every Durable Object
// in this isolate, from which placement and liveness are decided here. The registry then sees one read per isolate
// per period, whatever the number of sessions, and an isolate reads the shard it drew at start, spreading isolates
// over REGISTRY_SHARDS copies. Only plain data is shared between objects, never a promise or a stub (an I/O object
// belongs to the request that made it).
//
// What the snapshot cannot know yet (a recording finished a moment ago on another host) is asked again with
// `fresh`, bypassing the cache: the session does that after a play found no file, before it gives up.
import type { SidecarHeartbeat } from "@edge-vod/shared";
import type { Env } from "./config.ts";
import type { Placement, RegistrySnapshot, SidecarRegistry, SidecarView } from "./sidecar-registry.ts";

const DEFAULT_TTL_MS = 1000;
const DEFAULT_SHARDS = 4;
/** A sidecar holding a file's blocks or prepared copy takes its new viewers while its load is at most this much above the least loaded one's, and under this share of its capacity. */
const WARM_SLACK = 0.2;
const WARM_MAX_LOAD = 0.85;
/**
 * How long this isolate counts a placement on top of the sidecar's reported load: a few heartbeats, after which its
 * viewer is in the load the sidecar reports (counted twice meanwhile: a slight over-estimate, never a pile-up).
 */
const PLACED_MEMORY_MS = 5000;

function intVar(raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined || raw.trim() === "") return fallback;
  const n = Number(raw);
  return Number.isInteger(n) && n >= min && n <= max ? n : fallback;
}

export function registryShards(env: Env): number {
  return intVar(env.REGISTRY_SHARDS, DEFAULT_SHARDS, 1, 64);
}

function snapshotTtlMs(env: Env): number {
  return intVar(env.REGISTRY_SNAPSHOT_MS, DEFAULT_TTL_MS, 0, 60_000);
}

/** Shard 0 keeps the name the single registry always had, so its stored entries stay in use. */
export function registryShard(env: Env, shard: number): DurableObjectStub<SidecarRegistry> {
  return env.SIDECARS.get(env.SIDECARS.idFromName(shard === 0 ? "sidecars" : `sidecars-${shard}`));
}

/** A heartbeat reaches every shard before it is acknowledged: a recording it announces is known everywhere. */
export async function heartbeatAll(env: Env, hb: SidecarHeartbeat): Promise<void> {
  const n = registryShards(env);
  await Promise.all(Array.from({ length: n }, (_, i) => registryShard(env, i).heartbeat(hb)));
}

export async function markDownAll(env: Env, id: string): Promise<void> {
  for (const view of cache.values()) {
    const s = view.snapshot.sidecars.find((x) => x.id === id);
    if (s) s.healthy = false;
  }
  const n = registryShards(env);
  await Promise.all(Array.from({ length: n }, (_, i) => registryShard(env, i).markDown(id)));
}

interface CachedView {
  snapshot: RegistrySnapshot;
  /** When this isolate fetched it. */
  fetchedAt: number;
  /** When this isolate placed streams on each sidecar lately: a burst must not all land on one between heartbeats. */
  placed: Map<string, number[]>;
}

/** Per shard; in practice one entry, the shard this isolate drew. */
const cache = new Map<number, CachedView>();
let drawnShard: number | undefined;

/** The registry as this isolate last read it (at most REGISTRY_SNAPSHOT_MS old), or read now with `fresh`. */
export async function registryView(env: Env, opts: { fresh?: boolean } = {}): Promise<CachedView> {
  const shards = registryShards(env);
  drawnShard ??= Math.floor(Math.random() * shards);
  const shard = drawnShard % shards;
  const now = Date.now();
  const held = cache.get(shard);
  if (held && !opts.fresh && now - held.fetchedAt < snapshotTtlMs(env)) return held;
  const snapshot = await registryShard(env, shard).snapshot();
  // Placements of the last few seconds still count: the heartbeats in this snapshot may not include them yet.
  const placed = new Map<string, number[]>();
  for (const [id, times] of held?.placed ?? []) {
    const recent = times.filter((t) => now - t < PLACED_MEMORY_MS);
    if (recent.length > 0) placed.set(id, recent);
  }
  const view: CachedView = { snapshot, fetchedAt: Date.now(), placed };
  cache.set(shard, view);
  return view;
}

/**
 * Where a new stream goes: the sidecar that holds `file` (a recording not uploaded yet) if any; else the least
 * loaded healthy one, or one that has `file` warm when its load allows. Null when none is healthy.
 */
export function choose(view: CachedView, opts: { exclude?: readonly string[]; file?: string } = {}): Placement | null {
  const exclude = opts.exclude ?? [];
  const candidates = view.snapshot.sidecars.filter((s) => s.healthy && !exclude.includes(s.id));
  if (candidates.length === 0) return null;
  const file = opts.file;
  const load = (s: SidecarView) => (s.viewers + (view.placed.get(s.id)?.length ?? 0)) / s.maxViewers;
  let pick: SidecarView | undefined = file !== undefined ? candidates.find((s) => s.holds.includes(file)) : undefined;
  if (!pick) {
    const sorted = [...candidates].sort((a, b) => load(a) - load(b));
    const least = sorted[0]!;
    pick = least;
    if (file !== undefined && !least.warm.includes(file)) {
      const warm = sorted.find((s) => s.warm.includes(file) && load(s) <= load(least) + WARM_SLACK && load(s) < WARM_MAX_LOAD);
      if (warm) pick = warm;
    }
  }
  const times = view.placed.get(pick.id) ?? [];
  times.push(Date.now());
  view.placed.set(pick.id, times);
  return { id: pick.id, url: pick.url };
}

/** A healthy sidecar not in `exclude` that holds `file` (a recording not uploaded yet) or has it warm, if one does. */
export function elsewhere(view: CachedView, file: string, exclude: readonly string[]): Placement | undefined {
  const ok = view.snapshot.sidecars.filter((x) => x.healthy && !exclude.includes(x.id));
  const s = ok.find((x) => x.holds.includes(file)) ?? ok.find((x) => x.warm.includes(file));
  return s ? { id: s.id, url: s.url } : undefined;
}

/** The healthy sidecar that holds recording `name` (its upload pending), if one does. */
export function holderOf(view: CachedView, name: string): Placement | undefined {
  const s = view.snapshot.sidecars.find((x) => x.healthy && x.holds.includes(name));
  return s ? { id: s.id, url: s.url } : undefined;
}

/**
 * For each placement, whether its streams are gone: its sidecar is down (silent, leaving, refused, or unknown), or
 * beats as another run than the one that took the stream (it restarted between two checks).
 */
export function lost(view: CachedView, placements: readonly Placement[]): boolean[] {
  const byId = new Map(view.snapshot.sidecars.map((s) => [s.id, s]));
  return placements.map((p) => {
    const s = byId.get(p.id);
    if (!s || !s.healthy) return true;
    return p.instance !== undefined && s.instance !== undefined && p.instance !== s.instance;
  });
}
