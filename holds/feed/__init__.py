"""Data leaving the service: the lifecycle feed (reader, cursors, retention),
buyers' consent and erasure. See docs/data.md."""
