"""The core: errors and exit codes, retries, processes, locks, state files, data files, the machine id."""
