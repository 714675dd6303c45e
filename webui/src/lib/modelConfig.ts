import type { ConfigDocument } from "../api/client";

/** Finds a model's block in the config document, whatever its layout. */
export function findModelConfig(doc: ConfigDocument | undefined, name: string): unknown {
  if (!doc) return undefined;
  const direct = doc[name];
  if (direct && typeof direct === "object") return direct;
  const models = doc.models;
  if (Array.isArray(models)) {
    return models.find(
      (m) => m && typeof m === "object" && (m as { name?: unknown }).name === name,
    );
  }
  if (models && typeof models === "object") return (models as Record<string, unknown>)[name];
  return undefined;
}
