"""How the console shows money and time: each currency in its own format (CNY fen as ¥268.00,
USD cents as $120.00, JPY yen as ¥5,000), ages and time left in words a person reads at a glance."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from api.params import MAJOR_AMOUNT

# symbol, decimals (ISO 4217 minor unit exponent)
CURRENCIES: dict[str, tuple[str, int]] = {
    "USD": ("$", 2),
    "CNY": ("¥", 2),
    "EUR": ("€", 2),
    "GBP": ("£", 2),
    "JPY": ("¥", 0),
    "KRW": ("₩", 0),
    "HKD": ("HK$", 2),
    "SGD": ("S$", 2),
    "AUD": ("A$", 2),
    "CAD": ("CA$", 2),
    "CHF": ("CHF ", 2),
    "KWD": ("KD ", 3),
    "BHD": ("BD ", 3),
}
EXPONENTS = {code: exponent for code, (_, exponent) in CURRENCIES.items()}


def exponent(currency: str) -> int:
    return EXPONENTS.get(currency.upper(), 2)


def money(amount: int, currency: str) -> str:
    """Minor units as the currency writes them: `money(26800, "CNY")` is `¥268.00`."""
    code = currency.upper()
    symbol, places = CURRENCIES.get(code, ("", 2))
    sign = "-" if amount < 0 else ""
    major, minor = divmod(abs(amount), 10**places)
    text = f"{major:,}" + (f".{minor:0{places}d}" if places else "")
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {code}"


def to_minor(text: str, places: int) -> int | None:
    """`"30.5"` with 2 decimals → 3050; empty or unreadable → None (no bound).

    The text must match `api.params.MAJOR_AMOUNT` before any arithmetic: `Decimal` takes
    exponents (`1e999996`), and scaling one to minor units stalls the event loop."""
    text = text.strip()
    if not re.fullmatch(MAJOR_AMOUNT, text):
        return None
    return int(Decimal(text).scaleb(places).to_integral_value())


def duration(delta: timedelta) -> str:
    """`3d 4h`, `2h 5m`, `45s`: the two largest units."""
    seconds = int(abs(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def timestamp(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if at else ""
