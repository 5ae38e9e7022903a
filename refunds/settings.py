"""One settings object for every process: `REFUNDS_*` environment variables with dev defaults.

Secrets are never defaults. In dev mode (`REFUNDS_DEV_SECRETS`, set by `refunds dev`, `refunds
chaos` and the tests) unset ones are generated once into the data dir, so every process of the
stack agrees without anyone configuring anything. Outside dev mode an unset secret is a start-up
error naming every missing variable: a random key would fail later, at the gateway, for days.
Each secret may come from a file instead (`REFUNDS_X_FILE`, as Docker and Kubernetes mount them).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Sequence
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from refunds.domain.messages import Channel, DeliveryTimings, PaymentQuery, RefundTimings
from refunds.runtime.payload_codec import PayloadKey, parse_payload_keys

# Settings that may be read from a file named by `REFUNDS_<NAME>_FILE`.
SECRET_FILE_SETTINGS = (
    "database_url",
    "temporal_api_key",
    "jwt_secret",
    "decision_key",
    "decision_previous_key",
    "stripe_api_key",
    "stripe_webhook_secret",
    "wechatpay_apiv3_key",
    "payload_keys",
)
# What a deployment must set outside dev mode (the WeChat Pay key files and ids included).
REQUIRED_SECRETS = (
    "jwt_secret",
    "decision_key",
    "payload_keys",
    "stripe_api_key",
    "stripe_webhook_secret",
    "wechatpay_apiv3_key",
    "wechatpay_private_key_path",
    "wechatpay_cert_serial_no",
    "wechatpay_public_key_path",
    "wechatpay_public_key_id",
)


def env_name(setting: str) -> str:
    return f"REFUNDS_{setting.upper()}"


class MissingSecrets(ValueError):
    """Secrets unset outside dev mode; `names` are the variables to set."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        super().__init__(
            "missing secrets (set each variable, or VAR_FILE to a file holding a secret; "
            "`refunds dev` generates dev ones): " + ", ".join(self.names)
        )


def read_secret_file(variable: str, path: str) -> str:
    """A mounted secret's content, stripped (files usually end with a newline)."""
    try:
        value = Path(path).read_text().strip()
    except OSError as exc:
        raise ValueError(f"{variable}={path} cannot be read: {exc.strerror}") from None
    if not value:
        raise ValueError(f"{variable}={path} is empty")
    return value


def dev_secret(data_dir: Path, name: str, nbytes: int = 32) -> str:
    """Read a generated dev secret from the data dir, creating it on first use."""
    path = data_dir / "secrets" / name
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(nbytes)
    path.write_text(value)
    path.chmod(0o600)
    return value


def parse_currency_limits(raw: object) -> dict[str, int]:
    """Accept `{"USD": 5000}` (JSON) or `USD=5000,CNY=10000`; amounts are minor units."""
    if raw in (None, "", 0, "0"):
        return {}
    items: Iterable[Sequence[Any]]
    if isinstance(raw, dict):
        items = raw.items()
    else:
        text = str(raw).strip()
        if text.startswith("{"):
            items = json.loads(text).items()
        else:
            items = (part.split("=", 1) for part in text.split(",") if part.strip())
    limits: dict[str, int] = {}
    for currency, amount in items:
        value = int(str(amount).strip())
        if value < 0:
            raise ValueError(f"auto-approve limit for {currency} must be >= 0")
        limits[str(currency).strip().upper()] = value
    return limits


class Settings(BaseSettings):
    """Every knob of the service; see the settings table in README.md."""

    model_config = SettingsConfigDict(env_prefix="REFUNDS_", extra="ignore")

    data_dir: Path = Path(".refunds")
    # Dev mode: unset secrets are generated into the data dir instead of refusing to start.
    dev_secrets: bool = False
    database_url: str | None = None
    # Unset: Temporal's environment configuration (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
    # TEMPORAL_API_KEY, TEMPORAL_TLS_*, the profile file), then localhost:7233 / default.
    temporal_address: str | None = None
    temporal_namespace: str | None = None
    temporal_api_key: str | None = None
    temporal_tls: bool | None = None
    temporal_tls_cert_path: Path | None = None
    temporal_tls_key_path: Path | None = None
    temporal_tls_server_ca_path: Path | None = None
    temporal_tls_server_name: str | None = None
    task_queue: str = "refunds"
    # Encrypt every Temporal payload (`refunds.runtime.payload_codec`): `kid:base64key,...`,
    # the first key encrypts, every one decrypts (a rotation puts the new key first).
    payload_keys: str | None = None

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    public_base_url: str | None = None
    jwt_secret: str | None = None
    # Signs people's decisions (approve, reject, resolve) in the API; the workers take only
    # decisions signed with it or, during a rotation, with the previous key.
    decision_key: str | None = None
    decision_previous_key: str | None = None
    # Checked when set (and then required in every token); `refunds token` adds them.
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    # Tokens of an external OpenID Connect provider (issue 12), beside the HS256 ones: its JWKS
    # URL turns them on; issuer and audience are then required (checked in every token).
    oidc_jwks_url: str | None = None
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    # The claim holding the roles: a name, or a dotted path (`realm_access.roles` for Keycloak).
    oidc_roles_claim: str = "roles"
    # The console (issue 12): how long a sign-in lasts (never longer than its token), the
    # Temporal UI its refund pages link to, and the demo identities' buttons (`refunds dev`).
    console_session_ttl: timedelta = timedelta(hours=8)
    temporal_ui_url: str | None = None
    console_demo_sign_in: bool = False
    # The largest request body the API reads.
    max_body_bytes: int = 65536
    log_level: str = "INFO"
    # Prometheus metrics of the Temporal SDK in `refunds worker` (task slots, latencies,
    # failures per activity type); off when unset.
    worker_metrics_port: int | None = None

    approval_timeout: timedelta = timedelta(hours=72)
    # What the policy approves of admins' refunds, summed per order and per admin per UTC day
    # (`refunds.domain.approval_policy`). NoDecode: our validator reads `USD=5000,CNY=100` as
    # well as JSON.
    auto_approve_limit: Annotated[dict[str, int], NoDecode] = {}
    outcome_poll_interval: timedelta = timedelta(seconds=30)
    outcome_poll_max_interval: timedelta = timedelta(minutes=30)
    outcome_deadline: timedelta = timedelta(days=3)
    # An abnormal refund keeps polling the gateway this often until ops resolve it.
    abnormal_poll_interval: timedelta = timedelta(hours=1)
    gateway_call_timeout: timedelta = timedelta(seconds=30)
    gateway_retry_initial: timedelta = timedelta(seconds=1)
    gateway_retry_max: timedelta = timedelta(minutes=1)
    webhook_tolerance: timedelta = timedelta(minutes=5)
    # How long registering a paid order waits for its payment's check at the gateway (each try
    # bounded by gateway_call_timeout, at most three): past it the API answers 503.
    payment_check_timeout: timedelta = timedelta(seconds=20)

    # Daily reconciliation with the gateways (issue 9): when, and what counts as overdue.
    reconciliation_time: str = "03:00"
    reconciliation_time_zone: str = "UTC"
    overdue_pending_approval: timedelta = timedelta(hours=24)
    overdue_processing: timedelta = timedelta(hours=6)
    overdue_abnormal: timedelta = timedelta(hours=1)
    # WeChat Pay cannot list what changed: our WeChat refunds that became succeeded or failed
    # this long before the window's end are queried again (an ABNORMAL refund settled offline
    # after ops failed it). Stripe needs none: its `refund.failed` events say what failed.
    reconciliation_lookback: timedelta = timedelta(days=3)
    # Tries of each reconciliation step before its phase is given up (reported, the next phase
    # runs): ten ride out a worker restart or a short gateway outage, and the run still ends.
    reconciliation_step_attempts: int = Field(default=10, gt=0)

    # The shops' webhooks (issue 13): each try's timeout, the backoff between tries and how long
    # a delivery is tried before its endpoint is marked failing; deliveries in flight per
    # endpoint; how often each endpoint looks for deliveries whose wake-up was lost.
    webhook_timeout: timedelta = timedelta(seconds=10)
    webhook_retry_initial: timedelta = timedelta(seconds=30)
    webhook_retry_max: timedelta = timedelta(hours=1)
    webhook_retry_for: timedelta = timedelta(days=3)
    webhook_concurrency: int = Field(default=8, gt=0)
    webhook_sweep_interval: timedelta = timedelta(seconds=60)
    # Loopback, private, link-local targets are refused (SSRF) unless this is set (`refunds dev`
    # and the tests set it: their receivers listen on 127.0.0.1).
    webhook_allow_private_targets: bool = False
    # How long the secret before a rotation still signs, unless the rotation says otherwise.
    webhook_secret_overlap: timedelta = timedelta(hours=24)

    stripe_api_key: str | None = None
    stripe_api_base: str | None = None
    stripe_webhook_secret: str | None = None
    # Requests/s the whole fleet sends (held by Temporal on the channel's gateway task queue).
    # Stripe allows 100/s live and 25/s in test mode.
    stripe_rate_limit: int = Field(default=100, gt=0)

    wechatpay_gateway: str | None = None
    wechatpay_mchid: str = "1900000001"
    wechatpay_appid: str = "wx0000000000000001"
    wechatpay_private_key_path: Path | None = None
    wechatpay_cert_serial_no: str | None = None
    wechatpay_apiv3_key: str | None = None
    wechatpay_public_key_path: Path | None = None
    wechatpay_public_key_id: str | None = None
    wechatpay_rate_limit: int = Field(default=150, gt=0)

    @field_validator(
        "approval_timeout",
        "outcome_poll_interval",
        "outcome_poll_max_interval",
        "outcome_deadline",
        "abnormal_poll_interval",
        "gateway_call_timeout",
        "gateway_retry_initial",
        "gateway_retry_max",
        "webhook_tolerance",
        "payment_check_timeout",
        "overdue_pending_approval",
        "overdue_processing",
        "overdue_abnormal",
        "reconciliation_lookback",
        "console_session_ttl",
        "webhook_timeout",
        "webhook_retry_initial",
        "webhook_retry_max",
        "webhook_retry_for",
        "webhook_sweep_interval",
        "webhook_secret_overlap",
        mode="before",
    )
    @classmethod
    def _seconds(cls, raw: object) -> object:
        """Durations may be given as plain seconds (`30`, `0.5`) or ISO 8601 (`PT30S`)."""
        if isinstance(raw, str):
            try:
                return timedelta(seconds=float(raw))
            except ValueError:
                return raw
        return raw

    @field_validator(
        "database_url",
        "temporal_address",
        "temporal_namespace",
        "temporal_api_key",
        "temporal_tls",
        "temporal_tls_cert_path",
        "temporal_tls_key_path",
        "temporal_tls_server_ca_path",
        "temporal_tls_server_name",
        "public_base_url",
        "jwt_secret",
        "decision_key",
        "decision_previous_key",
        "jwt_issuer",
        "jwt_audience",
        "oidc_jwks_url",
        "oidc_issuer",
        "oidc_audience",
        "temporal_ui_url",
        "stripe_api_key",
        "stripe_api_base",
        "stripe_webhook_secret",
        "wechatpay_gateway",
        "wechatpay_private_key_path",
        "wechatpay_cert_serial_no",
        "wechatpay_apiv3_key",
        "wechatpay_public_key_path",
        "wechatpay_public_key_id",
        "worker_metrics_port",
        "payload_keys",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, raw: object) -> object:
        """`VAR=` (as compose writes `${VAR:-}`) means unset, not an empty URL or key."""
        return None if isinstance(raw, str) and not raw.strip() else raw

    @field_validator("payload_keys")
    @classmethod
    def _payload_keys_readable(cls, raw: str | None) -> str | None:
        """Refused at start-up, not at the first payload: a process that cannot decrypt would
        fail every workflow task it polls."""
        if raw is not None:
            parse_payload_keys(raw)
        return raw

    @field_validator("auto_approve_limit", mode="before")
    @classmethod
    def _parse_limits(cls, raw: object) -> dict[str, int]:
        return parse_currency_limits(raw)

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: Any) -> Any:
        """`REFUNDS_X_FILE=/run/secrets/x` reads X from that file; setting both is ambiguous."""
        if not isinstance(data, dict):
            return data
        for name in SECRET_FILE_SETTINGS:
            variable = env_name(name) + "_FILE"
            path = os.environ.get(variable, "").strip()
            if not path:
                continue
            if str(data.get(name) or "").strip():
                raise ValueError(f"both {env_name(name)} and {variable} are set: set one")
            data[name] = read_secret_file(variable, path)
        return data

    @model_validator(mode="after")
    def _oidc_complete(self) -> Settings:
        """A provider's tokens are accepted only for this API: never without `iss` and `aud`."""
        if self.oidc_jwks_url and not (self.oidc_issuer and self.oidc_audience):
            raise ValueError(
                "REFUNDS_OIDC_JWKS_URL needs REFUNDS_OIDC_ISSUER and REFUNDS_OIDC_AUDIENCE"
            )
        return self

    @model_validator(mode="after")
    def _fill_dev_secrets(self) -> Settings:
        if not self.dev_secrets:
            return self
        if self.jwt_secret is None:
            self.jwt_secret = dev_secret(self.data_dir, "jwt_secret")
        if self.decision_key is None:
            self.decision_key = dev_secret(self.data_dir, "decision_key")
        if self.stripe_api_key is None:
            self.stripe_api_key = "sk_test_" + dev_secret(self.data_dir, "stripe_api_key", 18)
        if self.stripe_webhook_secret is None:
            self.stripe_webhook_secret = "whsec_" + dev_secret(self.data_dir, "stripe_whsec", 24)
        if self.wechatpay_apiv3_key is None:
            self.wechatpay_apiv3_key = dev_secret(self.data_dir, "wechatpay_apiv3_key", 24)[:32]
        if self.payload_keys is None:
            # token_urlsafe(32) is the URL-safe base64 of 32 random bytes: an AES-256 key.
            self.payload_keys = "dev:" + dev_secret(self.data_dir, "payload_key")
        return self

    def missing_secrets(self) -> list[str]:
        """The variables a deployment must still set (none in dev mode: they are generated)."""
        if self.dev_secrets:
            return []
        return [env_name(name) for name in REQUIRED_SECRETS if getattr(self, name) is None]

    def check_secrets(self) -> None:
        """Raise `MissingSecrets` naming every unset secret at once."""
        missing = self.missing_secrets()
        if missing:
            raise MissingSecrets(missing)

    def payload_key_set(self) -> tuple[PayloadKey, ...]:
        """The keys every Temporal client of this process encrypts and decrypts with."""
        if self.payload_keys is None:
            raise MissingSecrets([env_name("payload_keys")])
        return parse_payload_keys(self.payload_keys)

    def sealing_keys(self) -> list[tuple[str, bytes]]:
        """The payload keys as the database's sealed columns take them (`db.sealing`)."""
        return [(key.id, key.secret) for key in self.payload_key_set()]

    @property
    def api_url(self) -> str:
        return self.public_base_url or f"http://{self.api_host}:{self.api_port}"

    def refund_timings(self) -> RefundTimings:
        """The waits a new workflow is started with (recorded in its history)."""
        return RefundTimings(
            approval_timeout=self.approval_timeout.total_seconds(),
            poll_interval=self.outcome_poll_interval.total_seconds(),
            poll_max_interval=self.outcome_poll_max_interval.total_seconds(),
            outcome_deadline=self.outcome_deadline.total_seconds(),
            gateway_call_timeout=self.gateway_call_timeout.total_seconds(),
            gateway_retry_initial=self.gateway_retry_initial.total_seconds(),
            gateway_retry_max=self.gateway_retry_max.total_seconds(),
            abnormal_poll_interval=self.abnormal_poll_interval.total_seconds(),
        )

    def payment_query(self, channel: Channel, payment_ref: str) -> PaymentQuery:
        """How a registration's payment check asks the gateway (recorded in its history)."""
        return PaymentQuery(
            channel=channel,
            payment_ref=payment_ref,
            call_timeout=self.gateway_call_timeout.total_seconds(),
            retry_initial=self.gateway_retry_initial.total_seconds(),
            retry_max=self.gateway_retry_max.total_seconds(),
        )

    def delivery_timings(self) -> DeliveryTimings:
        """How an endpoint's delivery workflow tries (recorded in its history at start)."""
        return DeliveryTimings(
            timeout=self.webhook_timeout.total_seconds(),
            retry_initial=self.webhook_retry_initial.total_seconds(),
            retry_max=self.webhook_retry_max.total_seconds(),
            retry_for=self.webhook_retry_for.total_seconds(),
            concurrency=self.webhook_concurrency,
            sweep_interval=self.webhook_sweep_interval.total_seconds(),
        )

    def overdue_after(self) -> dict[str, timedelta]:
        """How long a refund may stay in each non-terminal status before it is reported."""
        return {
            "pending_approval": self.overdue_pending_approval,
            "processing": self.overdue_processing,
            "abnormal": self.overdue_abnormal,
        }

    def auto_approve_limit_for(self, currency: str) -> int:
        return self.auto_approve_limit.get(currency.upper(), 0)


def describe(err: ValidationError) -> str:
    """One line per problem, named by variable, for a start-up error."""
    problems = []
    for error in err.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        loc = ".".join(str(part) for part in error["loc"])
        problems.append(f"{env_name(loc)}: {message}" if loc else message)
    return "; ".join(problems)


def token_secret(settings: Settings) -> str:
    """What `refunds token` signs with: the configured secret, else the one `refunds dev` wrote
    into the data dir. Never generated here: a token nobody verifies helps no one."""
    if settings.jwt_secret is not None:
        return settings.jwt_secret
    path = settings.data_dir / "secrets" / "jwt_secret"
    if not path.exists():
        raise SystemExit(
            f"REFUNDS_JWT_SECRET is not set and {settings.data_dir} has no dev secret "
            "(start `refunds dev` first)"
        )
    return path.read_text().strip()


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment; every secret must be set
    (outside dev mode), so a process stops here, before it listens or connects."""
    try:
        settings = Settings()
        settings.check_secrets()
    except ValidationError as err:
        raise SystemExit(f"refunds: invalid settings: {describe(err)}") from None
    except MissingSecrets as err:
        raise SystemExit(f"refunds: {err}") from None
    return settings
