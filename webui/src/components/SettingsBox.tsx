import { useState, type FormEvent } from "react";
import { getAdminKey, setAdminKey } from "../api/auth";

interface Props {
  open: boolean;
  onOpenChange: (open: boolean) => void;
}

/** Where a person pastes the admin key; it is kept in this browser's localStorage. */
export function SettingsBox({ open, onOpenChange: setOpen }: Props) {
  const [saved, setSaved] = useState(getAdminKey);
  const [draft, setDraft] = useState("");

  const save = (e: FormEvent) => {
    e.preventDefault();
    setAdminKey(draft);
    setSaved(draft.trim());
    setDraft("");
    setOpen(false);
  };
  const clear = () => {
    setAdminKey("");
    setSaved("");
  };

  return (
    <div className="settings">
      <button
        type="button"
        className="settings-toggle"
        onClick={() => setOpen(!open)}
        aria-expanded={open}
      >
        ⚙ Settings {saved ? <span className="muted small">(admin key set)</span> : null}
      </button>
      {open ? (
        <form className="settings-form" onSubmit={save}>
          <label htmlFor="admin-key">Admin key</label>
          <input
            id="admin-key"
            autoFocus
            type="password"
            autoComplete="off"
            placeholder={saved ? "•••••• (saved)" : "paste the manager's admin key"}
            value={draft}
            onChange={(e) => setDraft(e.target.value)}
          />
          <div className="row gap-s">
            <button type="submit" className="btn btn-primary btn-s" disabled={!draft.trim()}>
              Save
            </button>
            {saved ? (
              <button type="button" className="btn btn-s" onClick={clear}>
                Forget key
              </button>
            ) : null}
          </div>
          <p className="muted small">
            Only needed when the server requires one. Stored in this browser.
          </p>
        </form>
      ) : null}
    </div>
  );
}
