"""Images the stack needs that are not there: which image, where it is named, and which setting replaces it.

An image is replaced without editing anything with `[images]` in devenv.toml or DEVENV_IMAGE_MAP: for the
Postgres and Redis services the reference itself, for the server's Dockerfile a BuildKit named context
(`FROM node:18-alpine` builds from the mapped image), for a `# syntax=` line the BUILDKIT_SYNTAX argument.
"""

from __future__ import annotations

import re

from devenv.core.errors import ComposeFailed, DevenvError, ImageUnavailable
from devenv.project.config import Config
from devenv.project.dockerfile import Dockerfile, normalise

PULL_FAILURES = (
    "pull access denied",
    "manifest unknown",
    "failed to resolve",
    "no such host",
    "i/o timeout",
    "TLS handshake timeout",
    "repository does not exist",
    "failed to do request",
)
IMAGE_SETTINGS = {
    "postgres": "postgres.image in devenv.toml or DEVENV_POSTGRES_IMAGE",
    "redis": "redis.image in devenv.toml or DEVENV_REDIS_IMAGE",
}
OFFLINE_HINT = "(offline: devenv's `scripts/build-images.sh` builds stand-ins, docs/offline.md)"


def _map_hint(image: str) -> str:
    return f'[images] "{image}" = "IMAGE" in devenv.toml (or DEVENV_IMAGE_MAP={image}=IMAGE)'


def pull_failure(config: Config, err: ComposeFailed, dockerfile: Dockerfile | None = None) -> DevenvError | None:
    """A pull that failed (no registry, unknown image): name the image and the setting (None: something else)."""
    output = err.output
    if not any(marker in output for marker in PULL_FAILURES):
        return None
    last = output.strip().splitlines()[-1]
    base = re.search(r"failed to resolve source metadata for (\S+?):?\s", output) or re.search(
        r"load metadata for (\S+?):?\s*$", output, re.MULTILINE
    )
    if base:  # an image the server's build pulls: its FROM, or the `# syntax=` frontend
        raw = base.group(1)
        image = raw.removeprefix("docker.io/library/").removeprefix("docker.io/")
        if dockerfile is not None and dockerfile.syntax and normalise(dockerfile.syntax[1]) == normalise(image):
            line, frontend = dockerfile.syntax
            return ImageUnavailable(
                f"{dockerfile.path.name}:{line}: `# syntax={frontend}` asks BuildKit for the frontend image "
                f"{image}, which is not present and cannot be pulled: {last}",
                "remove the line (BuildKit's built-in frontend handles RUN --mount and heredocs), or map the "
                f"frontend to one you have: {_map_hint(frontend)}.",
            )
        args = [k for k, v in config.server.build_args.items() if v in (image, raw)]
        from_line = dockerfile.from_line(image) if dockerfile is not None else None
        where = f"{dockerfile.path.name}:{from_line.line}: `{from_line.text}`: " if dockerfile and from_line else ""
        if args:
            setting = f"set server.build_args.{args[0]} / DEVENV_BUILD_ARG_{args[0]} to an image you have"
        elif from_line is not None and "$" in from_line.image:
            name = re.sub(r"[${}]|:-.*", "", from_line.image)
            setting = f"set its build argument (DEVENV_BUILD_ARG_{name}) or map it: {_map_hint(image)}"
        else:
            setting = f"map it to an image you have: {_map_hint(image)}"
        return ImageUnavailable(
            f"{where}the server's base image {image} is not present and cannot be pulled: {last}",
            f"pull it where a registry is reachable, or {setting} {OFFLINE_HINT}.",
        )
    failing = re.findall(r"(?m)^\s*(postgres|redis)\s+Error\b", output)
    service = failing[0] if failing else next((s for s in IMAGE_SETTINGS if s in output), None)
    if service is None:
        return None
    image = config.image(config.postgres.image if service == "postgres" else config.redis.image)
    return ImageUnavailable(
        f"image {image} for {service} is not present and cannot be pulled: {last}",
        f"pull it where a registry is reachable, or set {IMAGE_SETTINGS[service]} to an image you have, or "
        f"{_map_hint(image)} {OFFLINE_HINT}.",
    )
