import { useState } from "react";
import { NavLink, Outlet, useLocation } from "react-router-dom";
import { useLive } from "../state/liveContext";
import { ConnectionBadge } from "./ConnectionBadge";
import { ErrorBanner } from "./ErrorBanner";
import { ErrorBoundary } from "./ErrorBoundary";
import { SettingsBox } from "./SettingsBox";

const NAV = [
  { to: "/", label: "Overview", end: true },
  { to: "/models", label: "Models", end: false },
  { to: "/logs", label: "Logs", end: false },
  { to: "/usage", label: "Usage & cost", end: false },
  { to: "/batches", label: "Batches", end: false },
  { to: "/keys", label: "API keys", end: false },
  { to: "/cluster", label: "Cluster", end: false },
];

/** Sidebar on wide screens; a top bar with a menu button on phones. */
export function Layout() {
  const [menuOpen, setMenuOpen] = useState(false);
  const [settingsOpen, setSettingsOpen] = useState(false);
  const { loadError, needsKey, keyEpoch } = useLive();
  const { pathname } = useLocation();
  const askForKey = () => {
    setMenuOpen(true);
    setSettingsOpen(true);
  };
  return (
    <div className="shell">
      <aside className={`sidebar ${menuOpen ? "open" : ""}`}>
        <div className="brand-row">
          <span className="brand">
            <span className="brand-mark" aria-hidden="true">
              ◆
            </span>{" "}
            llm-manager
          </span>
          <ConnectionBadge />
          <button
            type="button"
            className="menu-btn"
            aria-label="menu"
            aria-expanded={menuOpen}
            onClick={() => setMenuOpen((o) => !o)}
          >
            {menuOpen ? "✕" : "☰"}
          </button>
        </div>
        <nav className="nav" aria-label="main">
          {NAV.map((n) => (
            <NavLink
              key={n.to}
              to={n.to}
              end={n.end}
              className={({ isActive }) => (isActive ? "nav-link active" : "nav-link")}
              onClick={() => setMenuOpen(false)}
            >
              {n.label}
            </NavLink>
          ))}
        </nav>
        <div className="sidebar-foot">
          <SettingsBox open={settingsOpen} onOpenChange={setSettingsOpen} />
        </div>
      </aside>
      <main className="main">
        {needsKey ? (
          <div className="banner banner-error" role="alert">
            <span>{loadError}</span>
            <button type="button" className="btn btn-s" onClick={askForKey}>
              Enter admin key
            </button>
          </div>
        ) : (
          <ErrorBanner message={loadError} />
        )}
        {/* keyed by the admin key too: a new key re-reads every page */}
        <ErrorBoundary key={`${pathname}#${keyEpoch}`}>
          <Outlet />
        </ErrorBoundary>
      </main>
    </div>
  );
}
