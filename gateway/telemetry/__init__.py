"""Telemetry: every reading kept on disk, streamed to a time-series database."""
