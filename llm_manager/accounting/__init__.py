"""Usage rows, pricing, keys, limits, budgets and metrics: what the manager counts and guards."""
