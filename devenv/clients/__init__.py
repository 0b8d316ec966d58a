"""The wire clients devenv speaks itself (Postgres, Redis, HTTP) and the connectors built on them."""
