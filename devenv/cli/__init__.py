"""The edge: argument parsing and dispatch, every line printed, shell completion."""
