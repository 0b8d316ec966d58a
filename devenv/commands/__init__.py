"""One module per command family; each returns a result the CLI renders."""
