/** Saves `blob` as a download named `filename` (an object URL on a temporary link). */
export function saveBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  a.rel = "noopener";
  a.style.display = "none";
  document.body.appendChild(a);
  a.click();
  a.remove();
  // revoked after the click has handed the URL to the browser's download
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
