import { act, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import * as client from "../api/client";
import { batch } from "../test/batchFixtures";
import { renderWithLive } from "../test/render";
import { BATCH_POLL_MS, BatchesPage } from "./BatchesPage";

vi.mock("../api/client", async (importOriginal) => ({
  ...(await importOriginal<typeof import("../api/client")>()),
  listBatches: vi.fn(),
  cancelBatch: vi.fn(),
  getFileContent: vi.fn(),
}));
const mocked = vi.mocked(client);

const running = batch({ id: "batch_new", created_at: 1_700_000_500, metadata: { job: "nightly" } });
const done = batch({
  id: "batch_old",
  endpoint: "/v1/embeddings",
  status: "completed",
  output_file_id: "file-out",
  error_file_id: "file-err",
  completed_at: 1_700_000_300,
  request_counts: { total: 4, completed: 3, failed: 1 },
});

beforeEach(() => {
  mocked.listBatches.mockResolvedValue({ batches: [running, done], hasMore: false });
});
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe("BatchesPage", () => {
  it("lists batches newest first with status, progress and failed counts", async () => {
    renderWithLive(<BatchesPage />);
    const table = await screen.findByTestId("batch-table");
    const rows = within(table).getAllByRole("row").slice(1);
    expect(rows.map((r) => r.dataset.testid)).toEqual([
      "batch-row-batch_new",
      "batch-row-batch_old",
    ]);
    expect(mocked.listBatches).toHaveBeenCalledWith(50);

    const newRow = within(rows[0]!);
    expect(newRow.getByText("in progress")).toHaveAttribute("data-status", "in_progress");
    expect(newRow.getByText("job: nightly")).toBeInTheDocument();
    const bar = newRow.getByRole("progressbar", { name: "progress of batch_new" });
    expect(bar).toHaveAttribute("aria-valuenow", "7");
    expect(bar).toHaveAttribute("aria-valuemax", "10");
    expect(newRow.getByText("7 / 10 (70%)")).toBeInTheDocument();
    expect(newRow.getByText("expires")).toBeInTheDocument();
    expect(newRow.getByRole("button", { name: "Cancel batch_new" })).toBeInTheDocument();
    expect(newRow.queryByRole("button", { name: /Download/ })).not.toBeInTheDocument();

    const oldRow = within(rows[1]!);
    expect(oldRow.getByText("completed", { selector: ".badge" })).toBeInTheDocument();
    expect(oldRow.getByTitle("/v1/embeddings")).toHaveTextContent("embeddings");
    expect(oldRow.getByText("4 / 4 (100%)")).toBeInTheDocument();
    expect(oldRow.getByText("1", { selector: "td" })).toHaveClass("text-bad");
    expect(oldRow.queryByRole("button", { name: /Cancel/ })).not.toBeInTheDocument();
    expect(
      oldRow.getByRole("button", { name: "Download output of batch_old" }),
    ).toBeInTheDocument();
    expect(
      oldRow.getByRole("button", { name: "Download errors of batch_old" }),
    ).toBeInTheDocument();
  });

  it("cancels a batch after confirmation, then re-reads the list", async () => {
    mocked.cancelBatch.mockResolvedValue({ ...running, status: "cancelling" });
    vi.spyOn(window, "confirm").mockReturnValue(true);
    renderWithLive(<BatchesPage />);
    await userEvent.click(await screen.findByRole("button", { name: "Cancel batch_new" }));
    expect(mocked.cancelBatch).toHaveBeenCalledWith("batch_new");
    await waitFor(() => expect(mocked.listBatches).toHaveBeenCalledTimes(2));
  });

  it("does not cancel when the confirmation is declined", async () => {
    vi.spyOn(window, "confirm").mockReturnValue(false);
    renderWithLive(<BatchesPage />);
    await userEvent.click(await screen.findByRole("button", { name: "Cancel batch_new" }));
    expect(mocked.cancelBatch).not.toHaveBeenCalled();
  });

  it("shows a failed cancel in the error banner", async () => {
    const err = new Error("batch already finished");
    mocked.cancelBatch.mockRejectedValue(err);
    vi.spyOn(window, "confirm").mockReturnValue(true);
    renderWithLive(<BatchesPage />);
    await userEvent.click(await screen.findByRole("button", { name: "Cancel batch_new" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("batch already finished");
  });

  it("downloads the output file with the client (the admin key is a header)", async () => {
    const blob = new Blob(['{"id":"x"}\n'], { type: "application/octet-stream" });
    mocked.getFileContent.mockResolvedValue(blob);
    const createObjectURL = vi.fn(() => "blob:fake");
    const revokeObjectURL = vi.fn();
    Object.assign(URL, { createObjectURL, revokeObjectURL });
    let saved: { href: string; download: string } | null = null;
    vi.spyOn(HTMLAnchorElement.prototype, "click").mockImplementation(function (
      this: HTMLAnchorElement,
    ) {
      saved = { href: this.href, download: this.download };
    });
    renderWithLive(<BatchesPage />);
    await userEvent.click(
      await screen.findByRole("button", { name: "Download output of batch_old" }),
    );
    await waitFor(() => expect(saved).not.toBeNull());
    expect(mocked.getFileContent).toHaveBeenCalledWith("file-out");
    expect(createObjectURL).toHaveBeenCalledWith(blob);
    expect(saved).toEqual({ href: "blob:fake", download: "batch_old_output.jsonl" });
  });

  it("says how to create a batch when there is none", async () => {
    mocked.listBatches.mockResolvedValue({ batches: [], hasMore: false });
    renderWithLive(<BatchesPage />);
    const empty = await screen.findByTestId("batches-empty");
    expect(empty).toHaveTextContent("No batches yet");
    expect(empty).toHaveTextContent("c.batches.create(");
    expect(empty).toHaveTextContent('purpose="batch"');
    expect(screen.queryByTestId("batch-table")).not.toBeInTheDocument();
  });

  it("says so when the server has no Batches API", async () => {
    mocked.listBatches.mockResolvedValue(null);
    renderWithLive(<BatchesPage />);
    expect(await screen.findByTestId("batches-disabled")).toBeInTheDocument();
  });

  it("shows a failed read in the error banner", async () => {
    mocked.listBatches.mockRejectedValue(new Error("unauthorized (HTTP 401)"));
    renderWithLive(<BatchesPage />);
    expect(await screen.findByRole("alert")).toHaveTextContent("unauthorized (HTTP 401)");
  });

  it("loads more batches on request", async () => {
    mocked.listBatches.mockResolvedValue({ batches: [running, done], hasMore: true });
    renderWithLive(<BatchesPage />);
    await userEvent.click(await screen.findByRole("button", { name: "Show more" }));
    await waitFor(() => expect(mocked.listBatches).toHaveBeenLastCalledWith(100));
  });

  it("polls while a batch is running and stops once all are final", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    const finished = { ...running, status: "completed", completed_at: 1_700_000_900 };
    mocked.listBatches
      .mockResolvedValueOnce({ batches: [running], hasMore: false })
      .mockResolvedValue({ batches: [finished], hasMore: false });
    renderWithLive(<BatchesPage />);
    await screen.findByTestId("batch-row-batch_new");
    expect(mocked.listBatches).toHaveBeenCalledTimes(1);
    await act(() => vi.advanceTimersByTimeAsync(BATCH_POLL_MS));
    await waitFor(() =>
      expect(screen.getByTestId("batch-row-batch_new")).toHaveAttribute("data-status", "completed"),
    );
    expect(mocked.listBatches).toHaveBeenCalledTimes(2);
    await act(() => vi.advanceTimersByTimeAsync(BATCH_POLL_MS * 3));
    expect(mocked.listBatches).toHaveBeenCalledTimes(2);
  });

  it("does not poll when every batch is final", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    mocked.listBatches.mockResolvedValue({ batches: [done], hasMore: false });
    renderWithLive(<BatchesPage />);
    await screen.findByTestId("batch-row-batch_old");
    await act(() => vi.advanceTimersByTimeAsync(BATCH_POLL_MS * 3));
    expect(mocked.listBatches).toHaveBeenCalledTimes(1);
  });
});
