"""The stack: compose files, the image build, readiness probes, migration jobs, stack ownership across checkouts."""
