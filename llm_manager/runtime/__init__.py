"""Model processes, devices, placement, queueing, plugins and hot reload: what the Manager drives."""
