// The admin key lives in localStorage so it survives reloads. Listeners are
// told when it changes so the HTTP client and the WebSocket can pick it up.

const STORAGE_KEY = "llm-manager.adminKey";
type Listener = (key: string) => void;
const listeners = new Set<Listener>();

export function getAdminKey(): string {
  try {
    return window.localStorage.getItem(STORAGE_KEY) ?? "";
  } catch {
    return "";
  }
}

export function setAdminKey(key: string): void {
  const trimmed = key.trim();
  try {
    if (trimmed) window.localStorage.setItem(STORAGE_KEY, trimmed);
    else window.localStorage.removeItem(STORAGE_KEY);
  } catch {
    // storage may be disabled (private mode); the key still applies in memory below
  }
  listeners.forEach((fn) => fn(trimmed));
}

export function onAdminKeyChange(fn: Listener): () => void {
  listeners.add(fn);
  return () => {
    listeners.delete(fn);
  };
}
