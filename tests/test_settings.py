"""Settings parse what operators write: plain seconds, ISO durations, per-currency limits, and
`VAR=` as unset. Outside dev mode every missing secret is named in one start-up error; secrets
may come from `*_FILE` files; in dev mode unset secrets are generated once into the data dir."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from refunds.gateways.wechatpay_keys import resolve_wechatpay_config
from refunds.settings import (
    MissingSecrets,
    Settings,
    get_settings,
    token_secret,
)

SECRETS = {
    "jwt_secret": "jwt-" + "x" * 40,
    "decision_key": "decisions-" + "x" * 32,
    "payload_keys": "k1:" + "A" * 43,
    "stripe_api_key": "sk_live_abc",
    "stripe_webhook_secret": "whsec_abc",
    "wechatpay_apiv3_key": "k" * 32,
    "wechatpay_private_key_path": "/run/secrets/wechatpay_key.pem",
    "wechatpay_cert_serial_no": "5157F09EFDC096DE15EBE81A47057A72",
    "wechatpay_public_key_path": "/run/secrets/wechatpay_pub.pem",
    "wechatpay_public_key_id": "PUB_KEY_ID_0114232134912410000000000001",
}
REQUIRED = [f"REFUNDS_{name.upper()}" for name in SECRETS]


def make(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(f"REFUNDS_{name.upper()}", value)
    monkeypatch.setenv("REFUNDS_DATA_DIR", str(tmp_path))
    return Settings()


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No REFUNDS_* variable at all, so not in dev mode (the test session runs in dev mode)."""
    for key in list(os.environ):
        if key.startswith("REFUNDS_"):
            monkeypatch.delenv(key)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_durations_accept_seconds_and_iso_8601(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = make(
        monkeypatch,
        tmp_path,
        approval_timeout="PT2H",
        outcome_deadline="90",
        outcome_poll_interval="0.5",
    )
    assert settings.approval_timeout == timedelta(hours=2)
    assert settings.outcome_deadline == timedelta(seconds=90)
    assert settings.refund_timings().poll_interval == 0.5


@pytest.mark.parametrize("raw", ["USD=5000,cny=100", '{"USD": 5000, "CNY": 100}'])
def test_auto_approve_limit_is_per_currency_in_minor_units(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, raw: str
) -> None:
    settings = make(monkeypatch, tmp_path, auto_approve_limit=raw)
    assert settings.auto_approve_limit == {"USD": 5000, "CNY": 100}
    assert settings.auto_approve_limit_for("usd") == 5000
    assert settings.auto_approve_limit_for("EUR") == 0


@pytest.mark.parametrize("raw", ["USD=12.5", "USD=-1"])
def test_auto_approve_limit_rejects_fractions_and_negatives(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, raw: str
) -> None:
    with pytest.raises(ValidationError):
        make(monkeypatch, tmp_path, auto_approve_limit=raw)


def test_empty_variable_means_unset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = make(
        monkeypatch, tmp_path, stripe_api_base="", wechatpay_gateway=" ", worker_metrics_port=""
    )
    assert settings.stripe_api_base is None and settings.wechatpay_gateway is None
    assert settings.worker_metrics_port is None


def test_in_dev_mode_unset_secrets_are_generated_once_into_the_data_dir(
    production: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    first = make(production, tmp_path, dev_secrets="true")
    second = make(production, tmp_path, dev_secrets="true")
    assert first.missing_secrets() == []
    assert first.jwt_secret and first.jwt_secret == second.jwt_secret
    assert first.stripe_webhook_secret == second.stripe_webhook_secret
    assert (tmp_path / "secrets" / "jwt_secret").stat().st_mode & 0o077 == 0
    assert len(first.wechatpay_apiv3_key or "") == 32
    assert (first.stripe_api_key or "").startswith("sk_test_")
    assert first.payload_keys == second.payload_keys and len(first.payload_key_set()) == 1
    config = resolve_wechatpay_config(first)  # WeChat Pay dev keys too, into the data dir
    assert config.public_key_id.startswith("PUB_KEY_ID_")
    assert (tmp_path / "wechatpay" / "merchant_private_key.pem").exists()


def test_outside_dev_mode_every_missing_secret_is_named_at_once(
    production: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = make(production, tmp_path)
    assert settings.jwt_secret is None and settings.stripe_api_key is None
    with pytest.raises(MissingSecrets) as raised:
        settings.check_secrets()
    assert raised.value.names == REQUIRED
    with pytest.raises(SystemExit) as stopped:
        get_settings()
    assert all(name in str(stopped.value.code) for name in REQUIRED)
    assert not (tmp_path / "secrets").exists(), "nothing generated outside dev mode"


@pytest.mark.parametrize("present", list(SECRETS))
def test_each_missing_secret_is_named(
    production: pytest.MonkeyPatch, tmp_path: Path, present: str
) -> None:
    others = {name: value for name, value in SECRETS.items() if name != present}
    assert make(production, tmp_path, **others).missing_secrets() == [f"REFUNDS_{present.upper()}"]
    assert make(production, tmp_path, **SECRETS).missing_secrets() == []


def test_an_empty_secret_is_missing(production: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = make(production, tmp_path, **{**SECRETS, "stripe_api_key": ""})
    assert settings.missing_secrets() == ["REFUNDS_STRIPE_API_KEY"]


def test_wechatpay_keys_are_not_generated_outside_dev_mode(
    production: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = make(production, tmp_path, wechatpay_apiv3_key="k" * 32)
    with pytest.raises(MissingSecrets) as raised:
        resolve_wechatpay_config(settings)
    assert raised.value.names == REQUIRED[6:]
    assert not (tmp_path / "wechatpay").exists()


def test_payload_keys_are_read_at_start_up_and_refused_when_unreadable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rotated = make(monkeypatch, tmp_path, payload_keys=f"new:{'B' * 43}, old:{'A' * 43}")
    assert [k.id for k in rotated.payload_key_set()] == ["new", "old"]
    with pytest.raises(ValidationError, match="32 bytes"):
        make(monkeypatch, tmp_path, payload_keys="k1:c2hvcnQ=")


def test_payload_keys_are_read_from_their_file(
    production: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    mounted = tmp_path / "payload_keys"
    mounted.write_text(f"k2:{'B' * 43},k1:{'A' * 43}\n")
    production.setenv("REFUNDS_PAYLOAD_KEYS_FILE", str(mounted))
    assert [k.id for k in make(production, tmp_path).payload_key_set()] == ["k2", "k1"]


@pytest.mark.parametrize(
    "name",
    [
        "jwt_secret",
        "stripe_api_key",
        "stripe_webhook_secret",
        "wechatpay_apiv3_key",
        "database_url",
        "temporal_api_key",
    ],
)
def test_a_secret_is_read_from_its_file(
    production: pytest.MonkeyPatch, tmp_path: Path, name: str
) -> None:
    secret = tmp_path / "mounted"
    secret.write_text("from-the-file\n")
    production.setenv(f"REFUNDS_{name.upper()}_FILE", str(secret))
    assert getattr(make(production, tmp_path), name) == "from-the-file"


def test_secret_files_complete_a_deployment(production: pytest.MonkeyPatch, tmp_path: Path) -> None:
    values = {k: v for k, v in SECRETS.items() if k != "jwt_secret"}
    (tmp_path / "jwt").write_text("  jwt-from-file  \n")
    production.setenv("REFUNDS_JWT_SECRET_FILE", str(tmp_path / "jwt"))
    for name, value in values.items():
        production.setenv(f"REFUNDS_{name.upper()}", value)
    production.setenv("REFUNDS_DATA_DIR", str(tmp_path))
    assert get_settings().jwt_secret == "jwt-from-file"


def test_a_secret_and_its_file_both_set_is_refused(
    production: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "key").write_text("sk_live_file")
    production.setenv("REFUNDS_STRIPE_API_KEY_FILE", str(tmp_path / "key"))
    with pytest.raises(ValidationError, match="both REFUNDS_STRIPE_API_KEY and .*_FILE are set"):
        make(production, tmp_path, stripe_api_key="sk_live_env")
    with pytest.raises(SystemExit, match="REFUNDS_STRIPE_API_KEY_FILE are set"):
        get_settings()


@pytest.mark.parametrize("content", [None, " \n"])
def test_an_unreadable_or_empty_secret_file_is_refused(
    production: pytest.MonkeyPatch, tmp_path: Path, content: str | None
) -> None:
    path = tmp_path / "jwt"
    if content is not None:
        path.write_text(content)
    production.setenv("REFUNDS_JWT_SECRET_FILE", str(path))
    with pytest.raises(ValidationError, match=f"REFUNDS_JWT_SECRET_FILE={path}"):
        make(production, tmp_path)


def test_token_signs_with_the_dev_stack_secret_without_dev_mode(
    production: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(SystemExit, match="no dev secret"):
        token_secret(make(production, tmp_path))
    generated = make(production, tmp_path, dev_secrets="1").jwt_secret  # as `refunds dev` does
    production.delenv("REFUNDS_DEV_SECRETS")
    assert token_secret(make(production, tmp_path)) == generated
    assert token_secret(make(production, tmp_path, jwt_secret="configured")) == "configured"


def test_max_body_bytes(production: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert make(production, tmp_path).max_body_bytes == 65536
    assert make(production, tmp_path, max_body_bytes="1024").max_body_bytes == 1024
