"""Images the stack needs that are not there: which image, and which setting chooses it."""

from __future__ import annotations

import re

from devenv.config import Config
from devenv.errors import ComposeFailed, DevenvError, ImageUnavailable

PULL_FAILURES = (
    "pull access denied",
    "manifest unknown",
    "failed to resolve",
    "no such host",
    "i/o timeout",
    "TLS handshake timeout",
    "repository does not exist",
)
IMAGE_SETTINGS = {
    "postgres": "postgres.image in devenv.toml or DEVENV_POSTGRES_IMAGE",
    "redis": "redis.image in devenv.toml or DEVENV_REDIS_IMAGE",
}
OFFLINE_HINT = "(offline: `make images`, README 'Offline / air-gapped')"


def pull_failure(config: Config, err: ComposeFailed) -> DevenvError | None:
    """A pull that failed (no registry, unknown image): name the image and the setting (None: something else)."""
    output = err.output
    if not any(marker in output for marker in PULL_FAILURES):
        return None
    last = output.strip().splitlines()[-1]
    base = re.search(r"failed to resolve source metadata for (\S+?):?\s", output)
    if base:  # the server's Dockerfile FROM, during the build
        image = base.group(1).removeprefix("docker.io/library/").removeprefix("docker.io/")
        args = [k for k, v in config.server.build_args.items() if v in (image, base.group(1))]
        setting = (
            f"server.build_args.{args[0]} / DEVENV_BUILD_ARG_{args[0]}"
            if args
            else "the FROM image's build argument (server.build_args or DEVENV_BUILD_ARG_<NAME>)"
        )
        return ImageUnavailable(
            f"the server's base image {image} is not present and cannot be pulled: {last}",
            f"pull it where a registry is reachable, or set {setting} to an image you have {OFFLINE_HINT}.",
        )
    failing = re.findall(r"(?m)^\s*(postgres|redis)\s+Error\b", output)
    service = failing[0] if failing else next((s for s in IMAGE_SETTINGS if s in output), None)
    if service is None:
        return None
    image = config.postgres.image if service == "postgres" else config.redis.image
    return ImageUnavailable(
        f"image {image} for {service} is not present and cannot be pulled: {last}",
        f"pull it where a registry is reachable, or set {IMAGE_SETTINGS[service]} to an image you have {OFFLINE_HINT}.",
    )
