import { useState } from "react";
import { NavLink, Outlet } from "react-router-dom";
import { useLive } from "../state/liveContext";
import { ConnectionBadge } from "./ConnectionBadge";
import { ErrorBanner } from "./ErrorBanner";
import { SettingsBox } from "./SettingsBox";

const NAV = [
  { to: "/", label: "Overview", end: true },
  { to: "/models", label: "Models", end: false },
  { to: "/logs", label: "Logs", end: false },
  { to: "/usage", label: "Usage & cost", end: false },
  { to: "/keys", label: "API keys", end: false },
];

/** Sidebar on wide screens; a top bar with a menu button on phones. */
export function Layout() {
  const [menuOpen, setMenuOpen] = useState(false);
  const { loadError } = useLive();
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
          <SettingsBox />
        </div>
      </aside>
      <main className="main">
        <ErrorBanner message={loadError} />
        <Outlet />
      </main>
    </div>
  );
}
