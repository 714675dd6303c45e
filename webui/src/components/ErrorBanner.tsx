export function ErrorBanner({
  message,
  onClose,
}: {
  message: string | null;
  onClose?: () => void;
}) {
  if (!message) return null;
  return (
    <div className="banner banner-error" role="alert">
      <span>{message}</span>
      {onClose ? (
        <button type="button" className="link" onClick={onClose} aria-label="dismiss">
          ×
        </button>
      ) : null}
    </div>
  );
}
