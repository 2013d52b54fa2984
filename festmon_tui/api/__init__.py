"""The HTTP API (SPEC §12): the original's edge-function paths over the application service."""
