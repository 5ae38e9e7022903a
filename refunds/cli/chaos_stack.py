"""The processes a chaos run drives: both sandboxes, the API and N workers, each a real
`refunds ...` child process (`ProcessStack`), on a PostgreSQL and a Temporal given by the caller.

Workers are the ones that die: `kill_worker` sends SIGKILL to the whole process group (no
graceful shutdown, in-flight activities and workflow tasks simply vanish), `restart_worker`
starts a fresh process in its place.
"""

from __future__ import annotations

import os
import signal
from datetime import timedelta
from pathlib import Path

from refunds.cli.process_stack import ProcessStack

# Short waits (REFUNDS_* settings) so the run takes minutes, with margins so that no refund goes
# abnormal only because of injected faults: a gateway call gives up after 2 s, the chaos stall
# lasts longer (see CHAOS_DELAY), retries back off to 1 s, polls every 1.5-4 s.
CHAOS_TIMINGS: dict[str, timedelta] = {
    "approval_timeout": timedelta(minutes=30),
    "outcome_poll_interval": timedelta(seconds=1.5),
    "outcome_poll_max_interval": timedelta(seconds=4),
    # Short, so late refunds turn abnormal soon; an abnormal refund still settles by itself
    # when the gateway answers, so a slow one is not lost either.
    "outcome_deadline": timedelta(seconds=30),
    "abnormal_poll_interval": timedelta(seconds=2),
    "gateway_call_timeout": timedelta(seconds=2),
    "gateway_retry_initial": timedelta(milliseconds=200),
    "gateway_retry_max": timedelta(seconds=1),
    # The shop's webhooks (issue 13): retried quickly, swept often.
    "webhook_timeout": timedelta(seconds=3),
    "webhook_retry_initial": timedelta(milliseconds=200),
    "webhook_retry_max": timedelta(seconds=1),
    "webhook_sweep_interval": timedelta(seconds=2),
}
CHAOS_DELAY = 3.0  # seconds a "timeout" stalls: past the 2 s client timeout
REFUND_DELAY = 1.0  # seconds a sandbox refund stays pending


class ChaosStack(ProcessStack):
    def __init__(
        self, data_dir: Path, database_url: str, temporal_address: str, workers: int
    ) -> None:
        super().__init__(
            data_dir,
            database_url,
            temporal_address,
            workers,
            timings=CHAOS_TIMINGS,
            refund_delay=REFUND_DELAY,
            queue_prefix="chaos",
            # The run's webhook receiver listens on 127.0.0.1.
            extra_env={"REFUNDS_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true"},
            # Every Stripe event, not only the shop's subscription: the out-of-order fault holds
            # back `refund.created` until the refund succeeded, and only a subscriber to it gets
            # that stale "pending" after the success. The duplicate and lost-webhook faults bite
            # either way; the subscription itself is tested in tests/e2e/.
            stripe_webhook_events=None,
        )

    def kill_worker(self, index: int) -> int:
        """SIGKILL the worker's process group; returns the pid that died."""
        worker = self.workers[index]
        assert worker.proc is not None
        pid = worker.proc.pid
        os.killpg(pid, signal.SIGKILL)
        worker.proc.wait(10)
        worker.stop()  # already dead: only closes its log
        return pid

    def restart_worker(self, index: int) -> None:
        self.workers[index].start()
