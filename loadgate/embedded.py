"""Auto-start of the embedded mock target (placeholder until helper "webui" lands it)."""
