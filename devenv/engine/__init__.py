"""The Docker side: where the engine is and how to reach it (socket, tcp, TLS, ssh), the Engine API, the compose
CLI, the engine-wide inventory and host ports."""
