import { act, renderHook } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { FakeWebSocket } from "../test/fakeWebSocket";
import { backoffDelay, useEventStream } from "./useEventStream";

beforeEach(() => {
  FakeWebSocket.install();
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("backoffDelay", () => {
  it("doubles from 0.5 s and caps at 10 s", () => {
    expect([0, 1, 2, 3, 4, 5, 6, 10].map(backoffDelay)).toEqual([
      500, 1000, 2000, 4000, 8000, 10000, 10000, 10000,
    ]);
  });
});

describe("useEventStream", () => {
  it("connects, dispatches JSON messages and ignores junk", () => {
    const onMessage = vi.fn();
    const { result } = renderHook(() => useEventStream({ url: "ws://x/api/ws", onMessage }));
    expect(result.current.status).toBe("connecting");
    const ws = FakeWebSocket.latest();
    expect(ws.url).toBe("ws://x/api/ws");
    act(() => ws.open());
    expect(result.current.status).toBe("open");
    act(() => {
      ws.receive({ type: "event", event: { kind: "ready", model: "m", detail: "", ts: 1 } });
      ws.onmessage?.(new MessageEvent("message", { data: "not json" }));
      ws.receive({ no: "type" });
    });
    expect(onMessage).toHaveBeenCalledTimes(1);
    expect(onMessage.mock.calls[0]?.[0]).toMatchObject({ type: "event" });
  });

  it("reconnects with exponential back-off and resets after a good connect", () => {
    const onOpen = vi.fn();
    const { result } = renderHook(() =>
      useEventStream({ url: "ws://x/api/ws", onMessage: vi.fn(), onOpen }),
    );
    act(() => FakeWebSocket.latest().drop());
    expect(result.current.status).toBe("reconnecting");
    expect(result.current.retryInMs).toBe(500);
    expect(FakeWebSocket.instances).toHaveLength(1);
    act(() => vi.advanceTimersByTime(499));
    expect(FakeWebSocket.instances).toHaveLength(1);
    act(() => vi.advanceTimersByTime(1));
    expect(FakeWebSocket.instances).toHaveLength(2);

    act(() => FakeWebSocket.latest().drop());
    expect(result.current.retryInMs).toBe(1000);
    act(() => vi.advanceTimersByTime(1000));
    act(() => FakeWebSocket.latest().drop());
    expect(result.current.retryInMs).toBe(2000);
    expect(result.current.attempts).toBe(3);
    act(() => vi.advanceTimersByTime(2000));

    act(() => FakeWebSocket.latest().open());
    expect(result.current.status).toBe("open");
    expect(onOpen).toHaveBeenCalledTimes(1);
    act(() => FakeWebSocket.latest().drop());
    expect(result.current.retryInMs).toBe(500);
  });

  it("sends only while open", () => {
    const { result } = renderHook(() =>
      useEventStream({ url: "ws://x/api/ws", onMessage: vi.fn() }),
    );
    expect(result.current.send({ subscribe_logs: "m" })).toBe(false);
    act(() => FakeWebSocket.latest().open());
    expect(result.current.send({ subscribe_logs: "m" })).toBe(true);
    expect(FakeWebSocket.latest().sent).toEqual([{ subscribe_logs: "m" }]);
  });

  it("closes on unmount and does not reconnect", () => {
    const { unmount } = renderHook(() =>
      useEventStream({ url: "ws://x/api/ws", onMessage: vi.fn() }),
    );
    const ws = FakeWebSocket.latest();
    act(() => ws.open());
    unmount();
    expect(ws.readyState).toBe(FakeWebSocket.CLOSED);
    act(() => vi.advanceTimersByTime(20000));
    expect(FakeWebSocket.instances).toHaveLength(1);
  });

  it("opens a new socket when the URL changes", () => {
    const { rerender } = renderHook(({ url }) => useEventStream({ url, onMessage: vi.fn() }), {
      initialProps: { url: "ws://x/api/ws" },
    });
    const first = FakeWebSocket.latest();
    rerender({ url: "ws://y/api/ws" });
    expect(first.readyState).toBe(FakeWebSocket.CLOSED);
    expect(FakeWebSocket.latest().url).toBe("ws://y/api/ws");
  });

  it("offers the given subprotocols, and none when there are none", () => {
    renderHook(() => useEventStream({ url: "ws://x/api/ws", onMessage: vi.fn() }));
    expect(FakeWebSocket.latest().protocols).toEqual([]);
    renderHook(() =>
      useEventStream({
        url: "ws://x/api/ws",
        protocols: ["llm-manager", "bearer.azE"],
        onMessage: vi.fn(),
      }),
    );
    const ws = FakeWebSocket.latest();
    expect(ws.url).toBe("ws://x/api/ws");
    expect(ws.protocols).toEqual(["llm-manager", "bearer.azE"]);
    act(() => ws.open("llm-manager"));
    expect(ws.protocol).toBe("llm-manager");
  });

  it("reconnects with the new subprotocols when they change, not on a same-valued array", () => {
    const { result, rerender } = renderHook(
      ({ protocols }) => useEventStream({ url: "ws://x/api/ws", protocols, onMessage: vi.fn() }),
      { initialProps: { protocols: ["llm-manager"] } },
    );
    const first = FakeWebSocket.latest();
    act(() => first.open());
    // a fresh array with the same entries keeps the socket
    rerender({ protocols: ["llm-manager"] });
    expect(FakeWebSocket.instances).toHaveLength(1);
    expect(first.readyState).toBe(FakeWebSocket.OPEN);

    rerender({ protocols: ["llm-manager", "bearer.azE"] });
    expect(first.readyState).toBe(FakeWebSocket.CLOSED);
    expect(FakeWebSocket.instances).toHaveLength(2);
    const second = FakeWebSocket.latest();
    expect(second.url).toBe("ws://x/api/ws");
    expect(second.protocols).toEqual(["llm-manager", "bearer.azE"]);
    act(() => second.open());
    expect(result.current.status).toBe("open");

    // back-off reconnects keep offering the current list
    act(() => second.drop());
    act(() => vi.advanceTimersByTime(500));
    expect(FakeWebSocket.instances).toHaveLength(3);
    expect(FakeWebSocket.latest().protocols).toEqual(["llm-manager", "bearer.azE"]);
  });
});
