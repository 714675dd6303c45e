import type { Batch } from "../api/types";

export function batch(over: Partial<Batch> = {}): Batch {
  return {
    id: "batch_abc",
    object: "batch",
    endpoint: "/v1/chat/completions",
    status: "in_progress",
    input_file_id: "file-in",
    output_file_id: null,
    error_file_id: null,
    completion_window: "24h",
    created_at: 1_700_000_000,
    in_progress_at: 1_700_000_001,
    expires_at: 1_700_086_400,
    finalizing_at: null,
    completed_at: null,
    failed_at: null,
    expired_at: null,
    cancelling_at: null,
    cancelled_at: null,
    request_counts: { total: 10, completed: 6, failed: 1 },
    metadata: null,
    errors: null,
    ...over,
  };
}
