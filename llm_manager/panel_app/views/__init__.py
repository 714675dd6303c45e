"""One module per dashboard view; each reads snapshots from a source and never blocks the loop."""
