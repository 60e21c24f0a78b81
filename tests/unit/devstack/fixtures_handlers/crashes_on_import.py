"""A handler module whose import raises a non-import error (bad configuration at module scope)."""

raise RuntimeError("missing TABLE_NAME")
