"""Building the server image before anything starts: BuildKit's progress as steps, and a failed build as one
error naming the step (and its Dockerfile line), with that step's output below it.

`up` builds first, so the per-service deadlines start once the image exists: a slow first build (npm ci, prisma
generate) never counts against the server's readiness.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from devenv.core.errors import BuildFailed, ComposeFailed, DevenvError, tail
from devenv.project.config import Config
from devenv.project.dockerfile import Dockerfile
from devenv.stack.images import pull_failure

_STEP = re.compile(r"^#(\d+) \[(?:[\w.-]+ )?([\w.-]+ )?(\d+)/(\d+)\] (.+)$")
_ERROR = re.compile(r"^#(\d+) ERROR: (.+)$")


@dataclass(frozen=True)
class BuildStep:
    """One Dockerfile step as BuildKit reports it: `[deps 3/4] RUN npm ci`."""

    number: int  # BuildKit's vertex number (#N)
    stage: str  # "" for an unnamed stage
    index: int
    total: int
    instruction: str

    def label(self) -> str:
        where = f"{self.stage} " if self.stage else ""
        return f"[{where}{self.index}/{self.total}] {self.instruction}"


@dataclass
class BuildLog:
    """BuildKit's plain progress, read line by line: the steps, their output, the first error."""

    on_step: Callable[[BuildStep], None] = lambda step: None
    steps: dict[int, BuildStep] = field(default_factory=dict)
    output: dict[int, list[str]] = field(default_factory=dict)
    error: tuple[int, str] | None = None
    cached: int = 0

    def feed(self, line: str) -> None:
        if m := _STEP.match(line):
            step = BuildStep(int(m.group(1)), (m.group(2) or "").strip(), int(m.group(3)), int(m.group(4)), m.group(5))
            if step.number not in self.steps:
                self.steps[step.number] = step
                self.on_step(step)
            return
        if m := _ERROR.match(line):
            if self.error is None:
                self.error = (int(m.group(1)), m.group(2))
            return
        if m := re.match(r"^#(\d+) (.*)$", line):
            number, text = int(m.group(1)), m.group(2)
            if text == "CACHED":
                self.cached += 1
            elif not text.startswith(("DONE", "transferring", "resolve", "sha256:", "extracting", "exporting")):
                self.output.setdefault(number, []).append(re.sub(r"^\d+\.\d+ ", "", text))

    def failure(self, config: Config, dockerfile: Dockerfile | None, err: ComposeFailed) -> DevenvError:
        """The error for a build that exited non-zero."""
        pulled = pull_failure(config, err, dockerfile)
        if pulled is not None:
            return pulled
        if self.error is None:
            return BuildFailed(
                f"server image: the build failed: {err.message}",
                "run `docker compose build` in .devenv/ to see the whole log.",
                details=err.details,
            )
        number, reason = self.error
        step = self.steps.get(number)
        lines = self.output.get(number, [])
        where = ""
        if step is not None and dockerfile is not None:
            line = dockerfile.line_of(step.instruction)
            where = f" ({dockerfile.path.name}:{line})" if line else ""
        what = f"at step {step.label()}{where}" if step else f"at step #{number}"
        return BuildFailed(
            f"server image: build failed {what}: {reason}",
            _hint(lines, reason, dockerfile),
            details=tail("\n".join(lines)) or None,
        )


def _hint(lines: list[str], reason: str, dockerfile: Dockerfile | None = None) -> str:
    text = "\n".join(lines).lower() + reason.lower()
    if "self signed certificate" in text or "unable to get local issuer" in text or "self-signed" in text:
        uses_ca = dockerfile is None or any("id=npm_ca" in i for _, i in dockerfile.instructions)
        if not uses_ca:
            return (
                "npm does not trust this network's TLS proxy, and no RUN step of the Dockerfile mounts the CA "
                "bundle: add `--mount=type=secret,id=npm_ca` to the RUN that calls npm (with "
                "NODE_EXTRA_CA_CERTS=/run/secrets/npm_ca) and pass the host's bundle "
                "(DEVENV_BUILD_SECRET_NPM_CA=/etc/ssl/certs/ca-certificates.crt). An earlier `npm ci` may have "
                "failed the same way without failing its step."
            )
        return (
            "npm does not trust this network's TLS proxy: pass the host's CA bundle as a build secret "
            "(DEVENV_BUILD_SECRET_NPM_CA=/etc/ssl/certs/ca-certificates.crt; the Dockerfile mounts secret npm_ca)."
        )
    if "enotfound" in text or "eai_again" in text or "getaddrinfo" in text or "could not resolve host" in text:
        return "the step reaches for the network and gets no answer: check the registry it needs, or the proxy."
    if "apk: not found" in text:
        return (
            "the base image has no apk (an Alpine step on a Debian image): map the base image in [images] to one "
            "of the same family."
        )
    return "fix the step (its output is below), then `devenv up` again; `docker compose build` shows the whole log."
