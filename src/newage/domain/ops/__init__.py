"""Operating the server: debug, logs, audit, request log and trends."""
