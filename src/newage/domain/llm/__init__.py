"""LLM requests: intake, routing, queues, streams and answers."""
