import { screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it, vi } from "vitest";
import * as client from "../api/client";
import type { ApiKey } from "../api/types";
import { model } from "../test/fixtures";
import { liveValue, renderWithLive } from "../test/render";
import { KeysPage } from "./KeysPage";

vi.mock("../api/client", async (importOriginal) => ({
  ...(await importOriginal<typeof import("../api/client")>()),
  listKeys: vi.fn(),
  createKey: vi.fn(),
  revokeKey: vi.fn(),
}));
const mocked = vi.mocked(client);

const existing: ApiKey = {
  id: "k1",
  name: "notebook",
  prefix: "sk-abcd",
  models: [],
  created_at: 1_700_000_000,
  revoked: false,
};

beforeEach(() => {
  mocked.listKeys.mockResolvedValue([existing]);
});

describe("KeysPage", () => {
  it("lists keys", async () => {
    renderWithLive(<KeysPage />);
    expect(await screen.findByText("notebook")).toBeInTheDocument();
    expect(screen.getByText("sk-abcd…")).toBeInTheDocument();
    expect(screen.getByText("active")).toBeInTheDocument();
  });

  it("creates a key and shows its secret once", async () => {
    mocked.createKey.mockResolvedValue({
      id: "k2",
      name: "ci",
      key: "sk-secret-value",
      prefix: "sk-secr",
      models: ["chat-small"],
    });
    const writeText = vi.fn().mockResolvedValue(undefined);
    Object.defineProperty(navigator, "clipboard", { value: { writeText }, configurable: true });
    renderWithLive(<KeysPage />, liveValue({ state: { models: [model()] } }));
    await screen.findByText("notebook");
    await userEvent.type(screen.getByLabelText("Name"), "ci");
    await userEvent.click(screen.getByRole("checkbox", { name: "chat-small" }));
    await userEvent.click(screen.getByRole("button", { name: "Create key" }));
    expect(mocked.createKey).toHaveBeenCalledWith("ci", ["chat-small"]);
    expect(await screen.findByTestId("key-secret-value")).toHaveTextContent("sk-secret-value");
    expect(screen.getByText(/shown only once/)).toBeInTheDocument();
    await userEvent.click(screen.getByRole("button", { name: "Copy" }));
    expect(writeText).toHaveBeenCalledWith("sk-secret-value");
    expect(await screen.findByRole("button", { name: "Copied" })).toBeInTheDocument();
    await userEvent.click(screen.getByRole("button", { name: "I have saved it" }));
    expect(screen.queryByTestId("key-secret")).not.toBeInTheDocument();
    expect(mocked.listKeys).toHaveBeenCalledTimes(2);
  });

  it("revokes a key after confirmation", async () => {
    mocked.revokeKey.mockResolvedValue({ id: "k1", revoked: true });
    vi.spyOn(window, "confirm").mockReturnValue(true);
    renderWithLive(<KeysPage />);
    await userEvent.click(await screen.findByRole("button", { name: "Revoke notebook" }));
    expect(mocked.revokeKey).toHaveBeenCalledWith("k1");
    await waitFor(() => expect(mocked.listKeys).toHaveBeenCalledTimes(2));
  });

  it("does nothing when the revoke is cancelled", async () => {
    vi.spyOn(window, "confirm").mockReturnValue(false);
    renderWithLive(<KeysPage />);
    await userEvent.click(await screen.findByRole("button", { name: "Revoke notebook" }));
    expect(mocked.revokeKey).not.toHaveBeenCalled();
  });

  it("says so when the server has no key management", async () => {
    mocked.listKeys.mockResolvedValue(null);
    renderWithLive(<KeysPage />);
    expect(await screen.findByTestId("keys-disabled")).toBeInTheDocument();
  });

  it("lists config-file keys without a revoke button", async () => {
    mocked.listKeys.mockResolvedValue([
      { ...existing, revoked: true },
      {
        id: "cfg",
        name: "from-config",
        prefix: "",
        models: [],
        created_at: null,
        revoked: false,
        source: "config",
      },
    ]);
    renderWithLive(<KeysPage />);
    expect(await screen.findByText("(in config file)")).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Revoke from-config" })).not.toBeInTheDocument();
    expect(screen.queryByTestId("first-key-warning")).not.toBeInTheDocument();
  });

  it("shows the first-key warning when no active key exists", async () => {
    mocked.listKeys.mockResolvedValue([{ ...existing, revoked: true }]);
    renderWithLive(<KeysPage />);
    expect(await screen.findByTestId("first-key-warning")).toBeInTheDocument();
    expect(screen.getByText("revoked")).toBeInTheDocument();
  });
});
