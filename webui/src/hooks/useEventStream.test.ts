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

  it("opens a new socket when the URL changes (new admin key)", () => {
    const { rerender } = renderHook(({ url }) => useEventStream({ url, onMessage: vi.fn() }), {
      initialProps: { url: "ws://x/api/ws" },
    });
    const first = FakeWebSocket.latest();
    rerender({ url: "ws://x/api/ws?token=k" });
    expect(first.readyState).toBe(FakeWebSocket.CLOSED);
    expect(FakeWebSocket.latest().url).toBe("ws://x/api/ws?token=k");
  });
});
