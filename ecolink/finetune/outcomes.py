"""What a job action answers: done, already there, or refused with a reason for the user.

Every surface (the job pages, `/v1`, `/api/v1`, the operator console) maps these the same
way: done and already are both a success that shows the job's current state (a repeated
click or a duplicate API call is never an error); a refusal carries a message, a `code`
the API turns into a status, and the `param` at fault when there is one.
"""

from dataclasses import dataclass
from enum import StrEnum

from ecolink.finetune.models import Job


class Outcome(StrEnum):
    DONE = "done"
    ALREADY = "already"


@dataclass(frozen=True)
class ActionResult:
    outcome: Outcome
    job: Job  # as it is after the action, read under the action's lock

    @property
    def done(self) -> bool:
        return self.outcome is Outcome.DONE


class ActionRefused(Exception):
    """The action can't be taken now; the message says why, in words for the user.

    `code`: invalid_state (the job is not in a state for it), invalid (a request value),
    does_not_fit, capacity_unavailable or insufficient_balance. `param`: the field at fault.
    """

    code = "invalid_state"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.code = code or self.code
        self.param = param


class BalanceTooLow(ActionRefused):
    """The balance doesn't cover the estimate the action needs."""

    code = "insufficient_balance"


class ApprovalRefused(ActionRefused):
    """A job request failed a check or a gate (allow-list, ranges, fit, capacity, balance)."""

    code = "invalid"
