// WebSocket client for the manager's /api/ws event stream: JSON messages,
// automatic reconnect with exponential back-off (0.5 s doubling to 10 s).
// Credentials travel as WebSocket subprotocols (see eventStreamProtocols), never in the URL.
import { useCallback, useEffect, useRef, useState } from "react";
import type { ClientMessage, ServerMessage } from "../api/types";

export type ConnectionStatus = "connecting" | "open" | "reconnecting";

export const BACKOFF_START_MS = 500;
export const BACKOFF_MAX_MS = 10_000;

/** Delay before reconnect attempt number `attempt` (0-based). */
export function backoffDelay(attempt: number): number {
  return Math.min(BACKOFF_MAX_MS, BACKOFF_START_MS * 2 ** Math.max(0, attempt));
}

export interface EventStreamOptions {
  url: string;
  /**
   * Subprotocols offered in the handshake (e.g. ["llm-manager", "bearer.<base64url key>"]).
   * The socket reconnects when the list changes; a new array with the same entries does not.
   */
  protocols?: readonly string[];
  onMessage: (msg: ServerMessage) => void;
  /** Called on every (re)connect, e.g. to re-send subscriptions. */
  onOpen?: (send: (msg: ClientMessage) => boolean) => void;
}

export interface EventStream {
  status: ConnectionStatus;
  /** Milliseconds until the next reconnect attempt while reconnecting. */
  retryInMs: number | null;
  /** Failed attempts since the last successful connect. */
  attempts: number;
  send: (msg: ClientMessage) => boolean;
}

function isServerMessage(value: unknown): value is ServerMessage {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { type?: unknown }).type === "string"
  );
}

// Subprotocols are RFC 7230 tokens, which cannot contain a comma, so joining them
// gives a stable effect dependency that changes only when the list does.
const PROTOCOL_SEP = ",";

export function useEventStream({
  url,
  protocols,
  onMessage,
  onOpen,
}: EventStreamOptions): EventStream {
  const [status, setStatus] = useState<ConnectionStatus>("connecting");
  const [retryInMs, setRetryInMs] = useState<number | null>(null);
  const [attempts, setAttempts] = useState(0);
  const wsRef = useRef<WebSocket | null>(null);
  const onMessageRef = useRef(onMessage);
  const onOpenRef = useRef(onOpen);

  useEffect(() => {
    onMessageRef.current = onMessage;
    onOpenRef.current = onOpen;
  }, [onMessage, onOpen]);

  const send = useCallback((msg: ClientMessage): boolean => {
    const ws = wsRef.current;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(msg));
    return true;
  }, []);

  const protocolKey = protocols?.join(PROTOCOL_SEP) ?? "";

  useEffect(() => {
    const offered = protocolKey ? protocolKey.split(PROTOCOL_SEP) : [];
    let disposed = false;
    let attempt = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;

    const connect = () => {
      if (disposed) return;
      let ws: WebSocket;
      try {
        ws = offered.length ? new WebSocket(url, offered) : new WebSocket(url);
      } catch {
        scheduleReconnect();
        return;
      }
      wsRef.current = ws;
      ws.onopen = () => {
        if (disposed) return;
        attempt = 0;
        setAttempts(0);
        setRetryInMs(null);
        setStatus("open");
        onOpenRef.current?.(send);
      };
      ws.onmessage = (ev: MessageEvent) => {
        if (disposed || typeof ev.data !== "string") return;
        let parsed: unknown;
        try {
          parsed = JSON.parse(ev.data);
        } catch {
          return;
        }
        if (isServerMessage(parsed)) onMessageRef.current(parsed);
      };
      ws.onclose = () => {
        if (wsRef.current === ws) wsRef.current = null;
        if (!disposed) scheduleReconnect();
      };
    };

    const scheduleReconnect = () => {
      const delay = backoffDelay(attempt);
      attempt += 1;
      setAttempts(attempt);
      setRetryInMs(delay);
      setStatus("reconnecting");
      timer = setTimeout(connect, delay);
    };

    connect();

    return () => {
      disposed = true;
      if (timer) clearTimeout(timer);
      const ws = wsRef.current;
      wsRef.current = null;
      if (ws) {
        ws.onopen = null;
        ws.onmessage = null;
        ws.onclose = null;
        ws.close();
      }
      setStatus("connecting");
    };
  }, [url, protocolKey, send]);

  return { status, retryInMs, attempts, send };
}
