"""Session fixtures: one real PostgreSQL, one real Temporal dev server, one stack per run; per
test, an HTTP client and a shop of fresh identities."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from refunds.db.engine import make_engine, make_sessionmaker
from refunds.db.migrate import upgrade
from refunds.db.sealing import configure_sealing
from refunds.embedded.ports import free_port
from refunds.embedded.postgres import EmbeddedPostgres
from refunds.embedded.temporal import EmbeddedTemporal
from refunds.runtime.payload_codec import parse_payload_keys
from refunds.runtime.temporal_client import connect
from tests.factories import Shop
from tests.gateways.wechatpay_support import WeChatEnv, start_env, stop_env
from tests.sandboxes.stripe_support import StripeStack, running_sandbox
from tests.stack import TEST_PAYLOAD_KEYS, Stack, start_stack

# First in the process, so what the stack seals (webhook secrets) and what the tests write
# directly are sealed with the one key the stack's processes also hold.
configure_sealing([(key.id, key.secret) for key in parse_payload_keys(TEST_PAYLOAD_KEYS)])


@pytest.fixture(scope="session", autouse=True)
def dev_secrets() -> Iterator[None]:
    """Tests run in dev mode: a `Settings(data_dir=tmp)` generates its secrets into `tmp`. Tests
    of production start-up remove the variable (tests/test_secrets_startup.py)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REFUNDS_DEV_SECRETS", "true")
        yield


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    # Outside pytest-of-root: each pytest run resets that dir to 0700, which would lock the
    # unprivileged postgres user out of another run's data dir.
    root = Path(tempfile.mkdtemp(prefix="refunds-test-pg-"))
    pg = EmbeddedPostgres(root / "data", free_port(), durable=False)
    url = pg.start()
    upgrade(url)
    yield url
    pg.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def temporal_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("temporal") / "temporal.log"
    server = EmbeddedTemporal(free_port(), None, None, log)
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
def stack(
    tmp_path_factory: pytest.TempPathFactory, database_url: str, temporal_address: str
) -> Iterator[Stack]:
    running = start_stack(tmp_path_factory.mktemp("stack"), database_url, temporal_address)
    yield running
    running.stop()


@pytest_asyncio.fixture(scope="session")
async def sessionmaker(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(database_url, pool_size=5)
    yield make_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def stripe_session() -> Iterator[StripeStack]:
    """One Stripe sandbox for the adapter and sandbox tests (the e2e stack has its own)."""
    with running_sandbox() as stack:
        yield stack


@pytest.fixture
def stripe_stack(stripe_session: StripeStack) -> Iterator[StripeStack]:
    yield stripe_session
    stripe_session.control.delete("/_sandbox/faults").raise_for_status()


@pytest_asyncio.fixture(scope="session")
async def wechat_session(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[WeChatEnv]:
    """One WeChat Pay sandbox and notify receiver for the adapter and sandbox tests."""
    environment = start_env(tmp_path_factory.mktemp("wechat"))
    yield environment
    await stop_env(environment)


@pytest.fixture
async def wechat_env(wechat_session: WeChatEnv) -> AsyncIterator[WeChatEnv]:
    yield wechat_session
    await wechat_session.clear_faults()


@pytest_asyncio.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as client:
        yield client


@pytest_asyncio.fixture
async def shop(stack: Stack, http: httpx.AsyncClient) -> Shop:
    return Shop.open(stack, http)


@pytest_asyncio.fixture(scope="session")
async def temporal(stack: Stack) -> Client:
    return await connect(stack.settings, attempts=1)
