// Parsing and validating a JSON request body, for every HTTP boundary of the system (the sidecar's control API, the
// edge's sidecar intake and REST API): one wording of the 400s everywhere. Size limits and authentication stay
// with each caller, which knows its own.
import type { z } from "zod";

export type JsonBody<T> = { ok: true; value: T } | { ok: false; error: string };

/** `text` as JSON valid against `schema`; else the `{error}` message of a 400. `what` names it in that message. */
export function parseJsonBody<T extends z.ZodType>(text: string, schema: T, what = "request"): JsonBody<z.infer<T>> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, error: "Body is not valid JSON" };
  }
  return validated(json, schema, what);
}

/** A value already parsed (or a default) validated against `schema`, with the same wording as parseJsonBody. */
export function validated<T extends z.ZodType>(json: unknown, schema: T, what = "request"): JsonBody<z.infer<T>> {
  const parsed = schema.safeParse(json);
  if (parsed.success) return { ok: true, value: parsed.data };
  const issue = parsed.error.issues[0];
  return { ok: false, error: `Invalid ${what}: ${issue?.path.join(".") ?? ""} ${issue?.message ?? ""}`.trim() };
}
