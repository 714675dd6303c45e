import { screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { Route, Routes } from "react-router-dom";
import { describe, expect, it, vi } from "vitest";
import { getAdminKey, onAdminKeyChange } from "../api/auth";
import { liveValue, renderWithLive } from "../test/render";
import { Layout } from "./Layout";

function Broken(): never {
  throw new Error("bad data");
}

function renderLayout(loadError: string | null = null, path = "/", needsKey = false) {
  return renderWithLive(
    <Routes>
      <Route element={<Layout />}>
        <Route index element={<p>home page</p>} />
        <Route path="keys" element={<p>keys page</p>} />
        <Route path="broken" element={<Broken />} />
      </Route>
    </Routes>,
    liveValue({ loadError, needsKey }),
    path,
  );
}

describe("Layout", () => {
  it("navigates between pages", async () => {
    renderLayout();
    expect(screen.getByText("home page")).toBeInTheDocument();
    expect(screen.getByRole("link", { name: "Overview" })).toHaveClass("active");
    await userEvent.click(screen.getByRole("link", { name: "API keys" }));
    expect(screen.getByText("keys page")).toBeInTheDocument();
  });

  it("toggles the phone menu", async () => {
    renderLayout();
    const btn = screen.getByRole("button", { name: "menu" });
    expect(btn).toHaveAttribute("aria-expanded", "false");
    await userEvent.click(btn);
    expect(btn).toHaveAttribute("aria-expanded", "true");
  });

  it("stores the admin key from the settings box", async () => {
    const seen = vi.fn();
    const off = onAdminKeyChange(seen);
    renderLayout();
    await userEvent.click(screen.getByRole("button", { name: /Settings/ }));
    await userEvent.type(screen.getByLabelText("Admin key"), "  my-key ");
    await userEvent.click(screen.getByRole("button", { name: "Save" }));
    expect(getAdminKey()).toBe("my-key");
    expect(seen).toHaveBeenCalledWith("my-key");
    expect(screen.getByText("(admin key set)")).toBeInTheDocument();
    await userEvent.click(screen.getByRole("button", { name: /Settings/ }));
    await userEvent.click(screen.getByRole("button", { name: "Forget key" }));
    expect(getAdminKey()).toBe("");
    off();
  });

  it("shows a load error banner", () => {
    renderLayout("unauthorized: set the admin key in Settings (HTTP 401)");
    expect(screen.getByRole("alert")).toHaveTextContent("HTTP 401");
  });

  it("keeps the navigation when a page fails to render", async () => {
    vi.spyOn(console, "error").mockImplementation(() => undefined);
    renderLayout(null, "/broken");
    expect(screen.getByRole("alert")).toHaveTextContent("This page failed to render: bad data");
    await userEvent.click(screen.getByRole("link", { name: "API keys" }));
    expect(screen.getByText("keys page")).toBeInTheDocument();
  });

  it("offers to enter the admin key when the server asks for one", async () => {
    renderLayout("the management API needs the admin key (HTTP 401)", "/", true);
    expect(screen.getByRole("alert")).toHaveTextContent("needs the admin key");
    await userEvent.click(screen.getByRole("button", { name: "Enter admin key" }));
    expect(screen.getByLabelText("Admin key")).toHaveFocus();
    expect(screen.getByRole("button", { name: "menu" })).toHaveAttribute("aria-expanded", "true");
  });
});
