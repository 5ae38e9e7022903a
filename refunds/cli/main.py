"""`refunds`: the one command for every process of the product (SPEC §7)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _cmd_api(args: argparse.Namespace) -> None:
    import uvicorn

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
    from refunds.settings import get_settings

    secret = get_settings().jwt_secret
    assert secret is not None
    print(issue_token(secret, args.sub, args.role, ttl_seconds=args.ttl))


def _cmd_sandbox(args: argparse.Namespace) -> None:
    from refunds.cli.sandbox import serve_sandbox

    serve_sandbox(
        args.gateway, args.host, args.port, args.refund_delay, args.state_file, args.webhook_url
    )


def _cmd_dev(args: argparse.Namespace) -> None:
    from refunds.cli.dev import run_dev

    code = run_dev(Path(args.data_dir), args.api_port, args.temporal_port, args.ui_port)
    sys.stdout.flush()
    os._exit(code)  # temporalio may abort at interpreter exit (sdk-python#300)


def _cmd_bench(args: argparse.Namespace) -> None:
    from refunds.cli.bench import run_bench

    code = run_bench(Path(args.data_dir), args.refunds, args.concurrency)
    sys.stdout.flush()
    os._exit(code)


def _cmd_chaos(args: argparse.Namespace) -> None:
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


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="refunds", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)

    dev = sub.add_parser(
        "dev", help="run everything embedded: postgres, temporal, sandboxes, worker, API"
    )
    dev.add_argument("--data-dir", default=os.environ.get("REFUNDS_DATA_DIR", ".refunds"))
    dev.add_argument("--api-port", type=int, default=8000)
    dev.add_argument("--temporal-port", type=int, default=7233)
    dev.add_argument("--ui-port", type=int, default=8233)
    dev.set_defaults(func=_cmd_dev)

    api = sub.add_parser("api", help="serve the HTTP API (uvicorn)")
    api.add_argument("--host")
    api.add_argument("--port", type=int)
    api.set_defaults(func=_cmd_api)

    sub.add_parser("worker", help="run a Temporal worker").set_defaults(func=_cmd_worker)
    sub.add_parser("migrate", help="migrate the database to head").set_defaults(func=_cmd_migrate)

    token = sub.add_parser("token", help="print a JWT for the API")
    token.add_argument("--sub", required=True)
    token.add_argument(
        "--role", action="append", required=True, choices=["customer", "approver", "admin", "ops"]
    )
    token.add_argument("--ttl", type=int, default=86400, help="seconds")
    token.set_defaults(func=_cmd_token)

    sandbox = sub.add_parser("sandbox", help="run a gateway sandbox server")
    sandbox.add_argument("gateway", choices=["stripe", "wechatpay"])
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, required=True)
    sandbox.add_argument("--refund-delay", type=float, default=2.0, help="seconds pending")
    sandbox.add_argument("--state-file", type=Path)
    sandbox.add_argument("--webhook-url", help="stripe: where signed events are POSTed")
    sandbox.set_defaults(func=_cmd_sandbox)

    bench = sub.add_parser("bench", help="measure refund throughput against a running dev stack")
    bench.add_argument("--data-dir", default=os.environ.get("REFUNDS_DATA_DIR", ".refunds"))
    bench.add_argument("--refunds", type=int, default=200)
    bench.add_argument("--concurrency", type=int, default=20)
    bench.set_defaults(func=_cmd_bench)

    chaos = sub.add_parser(
        "chaos", help="refunds under injected gateway faults and worker kills, then checks"
    )
    chaos.add_argument(
        "--refunds", type=int, default=100, help="refunds to run (default: %(default)s)"
    )
    chaos.add_argument(
        "--workers", type=int, default=2, help="worker processes, 2 or more (default: %(default)s)"
    )
    chaos.add_argument(
        "--seed", type=int, default=1, help="the fault and kill plan (default: %(default)s)"
    )
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
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
