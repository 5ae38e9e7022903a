"""WeChat Pay v3 crypto primitives, shared by the adapter and the sandbox.

WeChat Pay v3 signs with SHA256withRSA (PKCS#1 v1.5) over newline-terminated lines and encrypts
notification resources with AES-256-GCM under the merchant's 32-byte APIv3 key. Keeping the
message formats here means the adapter and the sandbox cannot drift apart on a newline.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import string
import time

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
_AUTH_PARAM = re.compile(r'(\w+)="([^"]*)"')
_NONCE_ALPHABET = string.ascii_letters + string.digits


class DecryptError(Exception):
    """The ciphertext, nonce, associated data or key do not match (tampered or wrong key)."""


def load_private_key(pem: str | bytes) -> rsa.RSAPrivateKey:
    data = pem.encode() if isinstance(pem, str) else pem
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("WeChat Pay keys must be RSA")
    return key


def load_public_key(pem: str | bytes) -> rsa.RSAPublicKey:
    data = pem.encode() if isinstance(pem, str) else pem
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("WeChat Pay keys must be RSA")
    return key


def private_key_pem(key: rsa.RSAPrivateKey) -> str:
    """PKCS#8 PEM: the only private-key format `wechatpayv3` loads."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_key_pem(key: rsa.RSAPublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def new_nonce(length: int = 32) -> str:
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(length))


def timestamp_now() -> str:
    return str(int(time.time()))


def request_message(method: str, url: str, timestamp: str, nonce: str, body: str) -> str:
    """What a merchant signs: `URL` is the path with its query string, `BODY` is '' for GET."""
    return f"{method}\n{url}\n{timestamp}\n{nonce}\n{body}\n"


def response_message(timestamp: str, nonce: str, body: str) -> str:
    """What the platform signs on responses and notifications."""
    return f"{timestamp}\n{nonce}\n{body}\n"


def rsa_sign(private_key: rsa.RSAPrivateKey, message: str) -> str:
    signature = private_key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode()


def rsa_verify(public_key: rsa.RSAPublicKey, message: str, signature_b64: str) -> bool:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        public_key.verify(signature, message.encode(), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def build_authorization(
    *,
    method: str,
    url: str,
    body: str,
    mchid: str,
    serial_no: str,
    private_key: rsa.RSAPrivateKey,
    timestamp: str | None = None,
    nonce: str | None = None,
) -> str:
    """The merchant's `Authorization` header (what `wechatpayv3` sends), for raw-HTTP callers."""
    timestamp = timestamp or timestamp_now()
    nonce = nonce or new_nonce()
    signature = rsa_sign(private_key, request_message(method, url, timestamp, nonce, body))
    return (
        f'{SIGNATURE_TYPE} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
        f'timestamp="{timestamp}",serial_no="{serial_no}"'
    )


def parse_authorization(header: str) -> dict[str, str] | None:
    """The key="value" pairs of a `WECHATPAY2-SHA256-RSA2048 ...` header, or None if malformed."""
    scheme, _, params = header.strip().partition(" ")
    if scheme != SIGNATURE_TYPE:
        return None
    return dict(_AUTH_PARAM.findall(params))


def platform_headers(
    private_key: rsa.RSAPrivateKey,
    public_key_id: str,
    body: str,
    timestamp: str | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The `Wechatpay-*` headers the platform puts on responses and notifications."""
    timestamp = timestamp or timestamp_now()
    nonce = nonce or new_nonce()
    return {
        "Wechatpay-Timestamp": timestamp,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": rsa_sign(private_key, response_message(timestamp, nonce, body)),
        "Wechatpay-Serial": public_key_id,
        "Wechatpay-Signature-Type": SIGNATURE_TYPE,
    }


def aes_gcm_encrypt(apiv3_key: str, nonce: str, associated_data: str, plaintext: str) -> str:
    """Base64 of ciphertext+tag, as in a notification's `resource.ciphertext`."""
    sealed = AESGCM(apiv3_key.encode()).encrypt(
        nonce.encode(), plaintext.encode(), associated_data.encode()
    )
    return base64.b64encode(sealed).decode()


def aes_gcm_decrypt(apiv3_key: str, nonce: str, associated_data: str, ciphertext_b64: str) -> str:
    try:
        sealed = base64.b64decode(ciphertext_b64, validate=True)
        plain = AESGCM(apiv3_key.encode()).decrypt(nonce.encode(), sealed, associated_data.encode())
        return plain.decode()
    except (InvalidTag, binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise DecryptError(str(exc) or type(exc).__name__) from exc
