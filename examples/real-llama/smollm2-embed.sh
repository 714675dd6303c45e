#!/usr/bin/env bash
# smollm2-embed (Embedding): llama.cpp's llama-server with SmolLM2-135M-Instruct on the CPU.
# llm-manager sets PORT; build the server once with shared/real-llama/setup.sh.
: "${LLAMA_SERVER:=${REAL_LLAMA_ROOT:-/tmp/real-llama}/bin/llama-server}"
: "${LLAMA_MODEL:=${REAL_LLAMA_ROOT:-/tmp/real-llama}/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
exec "$LLAMA_SERVER" -m "$LLAMA_MODEL" --host 127.0.0.1 --port "${PORT:?set by llm-manager}" -c 2048 -t 1 --alias smollm2-embed --embeddings --pooling mean
