"""Settings parse what operators write: plain seconds, ISO durations, per-currency limits, and
`VAR=` as unset; secrets left unset are generated once into the data dir and reused."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from refunds.settings import Settings


def make(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(f"REFUNDS_{name.upper()}", value)
    monkeypatch.setenv("REFUNDS_DATA_DIR", str(tmp_path))
    return Settings()


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


def test_unset_secrets_are_generated_once_into_the_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    first, second = make(monkeypatch, tmp_path), make(monkeypatch, tmp_path)
    assert first.jwt_secret and first.jwt_secret == second.jwt_secret
    assert first.stripe_webhook_secret == second.stripe_webhook_secret
    assert (tmp_path / "secrets" / "jwt_secret").stat().st_mode & 0o077 == 0
    assert len(first.wechatpay_apiv3_key or "") == 32
