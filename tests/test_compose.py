"""The deployment files (Dockerfile, docker-compose.yml) against the code they start (SPEC §2).

No Docker engine runs here, so these tests check that what compose starts is what the embedded
mode runs: real `refunds` subcommands, real settings names, shared environment, start order.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from refunds.cli.main import parser
from refunds.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

CORE_SERVICES = ["postgres", "temporal", "temporal-ui", "migrate", "schedules", "api", "worker"]
SANDBOXES = ["sandbox-stripe", "sandbox-wechatpay"]
APP_SERVICES = ["migrate", "schedules", "api", "worker", *SANDBOXES]
SECRET_SETTINGS = [
    "REFUNDS_JWT_SECRET",
    "REFUNDS_STRIPE_API_KEY",
    "REFUNDS_STRIPE_WEBHOOK_SECRET",
    "REFUNDS_WECHATPAY_APIV3_KEY",
]
# Names that hold a secret in any service: their values must come from the environment.
SECRET_NAME = re.compile(r"SECRET|PASSWORD|PWD|API_KEY|APIV3_KEY")
REQUIRED = re.compile(r"^\$\{(?P<name>[A-Z][A-Z0-9_]*):\?[^}]+\}$")
# Dummy values for the required interpolations, for `docker compose config`.
REQUIRED_ENV = {
    "POSTGRES_PASSWORD": "pg-superuser",
    "APP_DB_PASSWORD": "app",
    "TEMPORAL_DB_PASSWORD": "temporal",
    "REFUNDS_JWT_SECRET": "jwt",
    "REFUNDS_STRIPE_API_KEY": "sk_test_x",
    "REFUNDS_STRIPE_WEBHOOK_SECRET": "whsec_x",
    "REFUNDS_WECHATPAY_APIV3_KEY": "0" * 32,
}


def setting_names() -> set[str]:
    return {f"REFUNDS_{name.upper()}" for name in Settings.model_fields}


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment in either compose form (mapping or list of NAME=value)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def test_every_service_of_the_production_shape_exists(services: dict[str, Any]) -> None:
    assert set(CORE_SERVICES + SANDBOXES) <= set(services)


def test_every_refunds_variable_is_a_setting(services: dict[str, Any]) -> None:
    known = setting_names()
    used = {name for svc in services.values() for name in environment(svc)}
    used |= set(re.findall(r"\$\{(REFUNDS_[A-Z0-9_]+)", COMPOSE_FILE.read_text()))
    used |= set(re.findall(r"\b(REFUNDS_[A-Z0-9_]+)=", DOCKERFILE.read_text()))
    refunds_vars = {name for name in used if name.startswith("REFUNDS_")}
    assert refunds_vars, "no REFUNDS_* settings configured"
    assert refunds_vars - known == set()


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_commands_are_refunds_subcommands(services: dict[str, Any], name: str) -> None:
    command = services[name]["command"]
    assert isinstance(command, list), "exec form, so no shell sits between compose and refunds"
    assert command[0] == "refunds"
    try:
        args = parser().parse_args(command[1:])
    except SystemExit as exc:
        pytest.fail(f"{name}: `{' '.join(command)}` is rejected by the refunds CLI ({exc})")
    assert callable(args.func)


def test_services_run_the_subcommand_their_name_says(services: dict[str, Any]) -> None:
    assert services["migrate"]["command"][:2] == ["refunds", "migrate"]
    assert services["schedules"]["command"][:3] == ["refunds", "schedules", "apply"]
    assert services["api"]["command"][:2] == ["refunds", "api"]
    assert services["worker"]["command"][:2] == ["refunds", "worker"]
    assert services["sandbox-stripe"]["command"][:3] == ["refunds", "sandbox", "stripe"]
    assert services["sandbox-wechatpay"]["command"][:3] == ["refunds", "sandbox", "wechatpay"]


def test_stripe_sandbox_posts_webhooks_to_the_api_route(services: dict[str, Any]) -> None:
    from api.routes.webhooks import router

    args = parser().parse_args(services["sandbox-stripe"]["command"][1:])
    assert args.host == "0.0.0.0"
    assert args.webhook_url == "http://api:8000/v1/webhooks/stripe"
    assert "/v1/webhooks/stripe" in {getattr(route, "path", None) for route in router.routes}


def test_app_services_share_one_environment(compose: dict[str, Any], services: dict) -> None:
    shared = {str(k): str(v) for k, v in compose["x-refunds-env"].items()}
    assert environment(services["api"]) == shared
    assert environment(services["worker"]) == environment(services["api"])
    for name in APP_SERVICES:
        assert environment(services[name]) == shared, name
    text = COMPOSE_FILE.read_text()
    assert "x-refunds-env: &refunds-env" in text
    assert "environment: *refunds-env" in text


def test_app_environment_points_at_the_compose_services(services: dict[str, Any]) -> None:
    env = environment(services["api"])
    assert re.fullmatch(
        r"postgresql://refunds:\$\{[^}]+\}@postgres:5432/refunds", env["REFUNDS_DATABASE_URL"]
    )
    assert env["REFUNDS_TEMPORAL_ADDRESS"] == "temporal:7233"
    assert env["REFUNDS_DATA_DIR"] == "/data"
    assert env["REFUNDS_API_HOST"] == "0.0.0.0"
    assert env["REFUNDS_STRIPE_API_BASE"] == "${REFUNDS_STRIPE_API_BASE:-}"
    assert env["REFUNDS_WECHATPAY_GATEWAY"] == "${REFUNDS_WECHATPAY_GATEWAY:-}"
    assert env["REFUNDS_PUBLIC_BASE_URL"].startswith("${REFUNDS_PUBLIC_BASE_URL:-")
    for name in APP_SERVICES:
        assert "refunds-data:/data" in services[name]["volumes"], name


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?message}`, for the tests."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2) or "", match.group(3) or ""
        if env.get(name):
            return env[name]
        if op == ":?":
            raise KeyError(name)
        return arg

    return re.sub(r"\$\{([A-Z0-9_]+)(?:(:-|:\?)([^}]*))?\}", one, value)


def test_compose_environment_parses_as_settings(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for key in list(os.environ):
        if key.startswith("REFUNDS_"):
            monkeypatch.delenv(key)
    for key, value in environment(services["worker"]).items():
        monkeypatch.setenv(key, interpolate(value, REQUIRED_ENV))
    monkeypatch.setenv("REFUNDS_DATA_DIR", str(tmp_path))  # /data is the volume in compose
    settings = Settings()
    assert settings.database_url == "postgresql://refunds:app@postgres:5432/refunds"
    assert settings.temporal_address == "temporal:7233"
    assert settings.api_url == "http://api:8000"
    assert settings.jwt_secret == REQUIRED_ENV["REFUNDS_JWT_SECRET"]
    assert settings.wechatpay_apiv3_key == REQUIRED_ENV["REFUNDS_WECHATPAY_APIV3_KEY"]
    assert not settings.stripe_api_base and not settings.wechatpay_gateway
    assert not (tmp_path / "secrets").exists(), "no dev secret is generated in production"


def test_worker_is_scalable(services: dict[str, Any]) -> None:
    worker = services["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker
    assert "hostname" not in worker


def test_migrate_runs_once_before_api_and_worker(services: dict[str, Any]) -> None:
    migrate = services["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" in services["postgres"]
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["temporal"]["condition"] == "service_healthy", name
    assert "healthcheck" in services["temporal"]
    assert "8000:8000" in [str(port) for port in services["api"]["ports"]]


def test_sandboxes_only_run_under_the_sandbox_profile(services: dict[str, Any]) -> None:
    for name in SANDBOXES:
        assert services[name]["profiles"] == ["sandbox"], name
    for name in CORE_SERVICES:
        assert "profiles" not in services[name], name


def test_temporal_persists_in_postgres(services: dict[str, Any]) -> None:
    temporal = services["temporal"]
    assert temporal["image"].startswith("temporalio/auto-setup:")
    env = environment(temporal)
    assert env["DB"] == "postgres12"
    assert env["DB_PORT"] == "5432"
    assert env["POSTGRES_SEEDS"] == "postgres"
    assert env["POSTGRES_USER"] == "temporal"
    assert REQUIRED.match(env["POSTGRES_PWD"])
    assert temporal["depends_on"]["postgres"]["condition"] == "service_healthy"
    # the dynamic config it is pointed at is the one mounted from deploy/
    mount = next(
        v for v in temporal["volumes"] if v.endswith(":/etc/temporal/config/dynamicconfig:ro")
    )
    local = ROOT / mount.split(":", 1)[0]
    config_path = env["DYNAMIC_CONFIG_FILE_PATH"]
    assert config_path.startswith("config/dynamicconfig/")
    assert (local / Path(config_path).name).is_file()
    assert yaml.safe_load((local / Path(config_path).name).read_text())

    ui = services["temporal-ui"]
    assert ui["image"].startswith("temporalio/ui:")
    assert environment(ui)["TEMPORAL_ADDRESS"] == "temporal:7233"


def test_postgres_creates_the_app_and_temporal_roles(services: dict[str, Any]) -> None:
    postgres = services["postgres"]
    assert postgres["image"] == "postgres:16"
    assert any(v.startswith("postgres-data:") for v in postgres["volumes"])
    mount = next(v for v in postgres["volumes"] if ":/docker-entrypoint-initdb.d" in v)
    scripts = sorted((ROOT / mount.split(":", 1)[0]).glob("*.sh"))
    assert scripts
    text = "".join(script.read_text() for script in scripts)
    assert "CREATE DATABASE refunds OWNER refunds" in text
    assert "CREATE ROLE temporal LOGIN CREATEDB" in text
    assert all(os.access(script, os.X_OK) for script in scripts)
    env = environment(postgres)
    for name in ("APP_DB_PASSWORD", "TEMPORAL_DB_PASSWORD"):
        assert f"${name}" in text
        assert env[name] == f"${{{name}:?set {name}}}"


def test_compose_commits_no_secret(services: dict[str, Any]) -> None:
    for svc_name, svc in services.items():
        for key, value in environment(svc).items():
            if SECRET_NAME.search(key):
                match = REQUIRED.match(value)
                assert match, f"{svc_name}.{key} must be a required ${{VAR:?...}} interpolation"
    env = environment(services["api"])
    for key in SECRET_SETTINGS:
        assert REQUIRED.match(env[key]).group("name") == key  # type: ignore[union-attr]
    url = env["REFUNDS_DATABASE_URL"]
    password = url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    assert REQUIRED.match(password), "the database password must come from the environment"


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            rows.append((keyword.upper(), rest.strip()))
    return rows


def test_dockerfile_runs_refunds_api_as_non_root() -> None:
    rows = dockerfile_instructions()
    froms = [rest for keyword, rest in rows if keyword == "FROM"]
    assert froms and all(rest.split()[0] == "python:3.11-slim" for rest in froms)
    assert any("pip install ." in rest for keyword, rest in rows if keyword == "RUN")
    users = [rest for keyword, rest in rows if keyword == "USER"]
    assert users and users[-1] not in ("root", "0")
    cmd = [rest for keyword, rest in rows if keyword in ("CMD", "ENTRYPOINT")]
    assert cmd[-1] == '["refunds", "api"]'
    env = " ".join(rest for keyword, rest in rows if keyword == "ENV")
    assert "REFUNDS_API_HOST=0.0.0.0" in env
    assert "REFUNDS_DATA_DIR=/data" in env


def test_the_installed_package_holds_every_module_of_the_repo() -> None:
    """`pip install .` in the image must ship every top-level package the commands import."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = project["tool"]["setuptools"]
    patterns = setuptools["packages"]["find"]["include"]
    packages = {
        path.parent.name
        for path in ROOT.glob("*/__init__.py")
        if path.parent.name not in ("tests", ".venv")
    }
    missing = {
        pkg for pkg in packages if not any(fnmatch.fnmatch(pkg, pattern) for pattern in patterns)
    }
    assert missing == set(), f"add to [tool.setuptools.packages.find] include: {sorted(missing)}"
    modules = {path.stem for path in ROOT.glob("*.py")}
    assert modules <= set(setuptools["py-modules"])


def compose_command() -> list[str] | None:
    """`docker compose` (the plugin) when present, else the standalone `docker-compose`."""
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


def run_compose(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = compose_command()
    if command is None:
        pytest.skip("neither the docker compose plugin nor docker-compose is installed")
    base = {key: os.environ[key] for key in ("PATH", "HOME") if key in os.environ}
    return subprocess.run(
        [*command, "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE), *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.mark.parametrize("profile", [[], ["--profile", "sandbox"]], ids=["core", "sandbox"])
def test_docker_compose_config_is_valid(profile: list[str]) -> None:
    result = run_compose([*profile, "config", "-q"], REQUIRED_ENV)
    assert result.returncode == 0, result.stderr


def test_docker_compose_refuses_to_start_without_the_secrets() -> None:
    env = {k: v for k, v in REQUIRED_ENV.items() if k != "REFUNDS_JWT_SECRET"}
    result = run_compose(["config", "-q"], env)
    assert result.returncode != 0
    assert "set REFUNDS_JWT_SECRET" in result.stderr
