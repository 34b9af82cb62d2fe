"""Training methods (filled in by the method registry)."""


def check_config(cfg) -> None:
    """`train.method` against the method registry."""
