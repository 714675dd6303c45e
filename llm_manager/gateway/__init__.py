"""The core path of a proxied request, no HTTP in it: the pipeline, its checks, the relay and the upstream client."""
