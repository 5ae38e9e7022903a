"""Turn domain errors into non-retryable ApplicationErrors whose `type` the API maps back."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from temporalio.exceptions import ApplicationError

from refunds.domain.errors import DomainError, GatewayTransientError

P = ParamSpec("P")
R = TypeVar("R")


def business_errors(
    fn: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """A business rule broken will not heal on retry: fail the activity for good, typed."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except DomainError as exc:
            raise ApplicationError(
                exc.message, type=type(exc).__name__, non_retryable=True
            ) from exc
        except GatewayTransientError as exc:
            raise ApplicationError(str(exc), type=type(exc).__name__) from exc

    return wrapper
