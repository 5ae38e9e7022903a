"""Dev keys for WeChat Pay v3 and the resolved adapter configuration.

Real merchants get their keys from the WeChat Pay console. In dev mode (`refunds dev`, `refunds
chaos`, the tests) we generate a merchant key pair and a platform key pair once into the data dir
(never into the repo), so the adapter and the sandbox trust each other with nothing configured.
Outside dev mode a missing key is an error: generated keys would only be refused by the gateway.
"""

from __future__ import annotations

import fcntl
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric import rsa

from refunds.gateways.wechatpay_crypto import private_key_pem, public_key_pem
from refunds.settings import MissingSecrets, env_name

if TYPE_CHECKING:
    from refunds.settings import Settings

DEFAULT_GATEWAY_URL = "https://api.mch.weixin.qq.com"
NOTIFY_PATH = "/v1/webhooks/wechatpay"
_META = "keys.json"


@dataclass(frozen=True)
class WeChatPayKeys:
    """Paths of the generated dev keys plus the merchant serial and the platform public key id."""

    merchant_private_key_path: Path
    merchant_public_key_path: Path
    merchant_cert_serial_no: str
    platform_private_key_path: Path
    platform_public_key_path: Path
    platform_public_key_id: str

    def merchant_private_key_pem(self) -> str:
        return self.merchant_private_key_path.read_text()

    def merchant_public_key_pem(self) -> str:
        return self.merchant_public_key_path.read_text()

    def platform_private_key_pem(self) -> str:
        return self.platform_private_key_path.read_text()

    def platform_public_key_pem(self) -> str:
        return self.platform_public_key_path.read_text()


@dataclass(frozen=True)
class WeChatPayConfig:
    """Everything the adapter needs; PEM contents, not paths, so tests can build one in memory."""

    gateway_url: str
    mchid: str
    appid: str
    private_key_pem: str
    cert_serial_no: str
    apiv3_key: str
    public_key_pem: str
    public_key_id: str
    notify_url: str
    timeout_seconds: float = 30.0
    webhook_tolerance_seconds: float = 300.0


def _write(path: Path, text: str, private: bool) -> None:
    path.write_text(text)
    path.chmod(0o600 if private else 0o644)


def _generate(directory: Path) -> None:
    for name in ("merchant", "platform"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write(directory / f"{name}_private_key.pem", private_key_pem(key), private=True)
        _write(directory / f"{name}_public_key.pem", public_key_pem(key.public_key()), False)
    meta = {
        "merchant_cert_serial_no": secrets.token_hex(20).upper(),
        "platform_public_key_id": "PUB_KEY_ID_" + secrets.token_hex(16).upper(),
    }
    # keys.json is written last: its presence means the set is complete.
    _write(directory / _META, json.dumps(meta, indent=2), private=False)


def ensure_dev_keys(data_dir: Path) -> WeChatPayKeys:
    """Generate the dev key set into `data_dir/wechatpay/` once; later calls reuse it.

    A file lock makes concurrent first starts (api, worker and sandbox at once) agree on one set.
    """
    directory = Path(data_dir) / "wechatpay"
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (directory / _META).exists():
            _generate(directory)
    meta = json.loads((directory / _META).read_text())
    return WeChatPayKeys(
        merchant_private_key_path=directory / "merchant_private_key.pem",
        merchant_public_key_path=directory / "merchant_public_key.pem",
        merchant_cert_serial_no=meta["merchant_cert_serial_no"],
        platform_private_key_path=directory / "platform_private_key.pem",
        platform_public_key_path=directory / "platform_public_key.pem",
        platform_public_key_id=meta["platform_public_key_id"],
    )


def resolve_wechatpay_config(settings: Settings) -> WeChatPayConfig:
    """The adapter config from settings; in dev mode, dev keys fill whatever key setting is unset.

    Dev keys are only generated in dev mode and when something is missing, so a configured
    deployment never writes key files; outside dev mode anything missing is `MissingSecrets`.
    """
    private_key_path = settings.wechatpay_private_key_path
    serial_no = settings.wechatpay_cert_serial_no
    public_key_path = settings.wechatpay_public_key_path
    public_key_id = settings.wechatpay_public_key_id
    if None in (private_key_path, serial_no, public_key_path, public_key_id):
        _require_dev_mode(settings)
        keys = ensure_dev_keys(settings.data_dir)
        private_key_path = private_key_path or keys.merchant_private_key_path
        serial_no = serial_no or keys.merchant_cert_serial_no
        public_key_path = public_key_path or keys.platform_public_key_path
        public_key_id = public_key_id or keys.platform_public_key_id
    assert private_key_path and serial_no and public_key_path and public_key_id
    if settings.wechatpay_apiv3_key is None:
        raise MissingSecrets([env_name("wechatpay_apiv3_key")])
    return WeChatPayConfig(
        gateway_url=(settings.wechatpay_gateway or DEFAULT_GATEWAY_URL).rstrip("/"),
        mchid=settings.wechatpay_mchid,
        appid=settings.wechatpay_appid,
        private_key_pem=Path(private_key_path).read_text(),
        cert_serial_no=serial_no,
        apiv3_key=settings.wechatpay_apiv3_key,
        public_key_pem=Path(public_key_path).read_text(),
        public_key_id=public_key_id,
        notify_url=settings.api_url.rstrip("/") + NOTIFY_PATH,
        timeout_seconds=settings.gateway_call_timeout.total_seconds(),
        webhook_tolerance_seconds=settings.webhook_tolerance.total_seconds(),
    )


def _require_dev_mode(settings: Settings) -> None:
    if not settings.dev_secrets:
        names = ("private_key_path", "cert_serial_no", "public_key_path", "public_key_id")
        missing = [f"wechatpay_{name}" for name in names]
        raise MissingSecrets([env_name(n) for n in missing if getattr(settings, n) is None])
