"""Client protocols around the pipeline (Anthropic Messages, OpenAI Responses, Ollama): one adapter each."""
