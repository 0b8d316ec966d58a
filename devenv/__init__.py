"""devenv: one command from a fresh clone to a migrated, healthy local stack."""

__version__ = "0.1.0"
