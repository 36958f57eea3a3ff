"""Generate once: normalization, read-first single-flight service, generator backends."""
