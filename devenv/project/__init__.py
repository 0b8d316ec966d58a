"""The project as devenv reads it: discovery, devenv.toml, the env template and .env, package.json, Prisma, the
Dockerfile, the services and where they answer, and the per-command context built from all of them."""
