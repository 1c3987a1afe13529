"""The token expirer: ends the tokens past their timeout and resumes the jobs that wait on
them (with ``TokenResult(ok=False)``)."""

from __future__ import annotations

from ...conf import get_settings
from ...services.tokens import expire_timed_out_tokens
from ..service import Service


class TokenExpirer(Service):
    """Every ``SUPERVISOR_INTERVAL``: ``expire_timed_out_tokens()``."""

    name = "token_expirer"

    @property
    def interval(self) -> float:
        return get_settings().SUPERVISOR_INTERVAL

    def run_once(self) -> int:
        return expire_timed_out_tokens()
