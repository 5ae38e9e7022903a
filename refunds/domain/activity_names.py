"""The names the workflow schedules activities by.

The workflow must not import the activities themselves (they pull in the database and the
gateway clients); both sides name each activity from here so the two cannot drift apart. These
strings are in every recorded history: renaming one breaks running refunds.
"""

from typing import Final

APPLY_REFUND: Final = "apply_refund"
TRANSITION: Final = "transition"
RECORD_EVENT: Final = "record_event"
CREATE_GATEWAY_REFUND: Final = "create_gateway_refund"
GET_GATEWAY_REFUND: Final = "get_gateway_refund"
RESTORE_POINTS: Final = "restore_points"
RESTORE_INVENTORY: Final = "restore_inventory"
RELEASE_COUPON: Final = "release_coupon"
REVERSE_RESTORES: Final = "reverse_restores"
CLAIM_REFUND: Final = "claim_refund"
OPEN_RECONCILIATION: Final = "open_reconciliation"
RECONCILE_STEP: Final = "reconcile_step"
CLOSE_RECONCILIATION: Final = "close_reconciliation"
