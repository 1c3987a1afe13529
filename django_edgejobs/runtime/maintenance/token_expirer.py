"""The token expirer: ends the tokens past their timeout and resumes the jobs that wait on
them (with ``TokenResult(ok=False)``)."""

from __future__ import annotations

from ...services.tokens import expire_timed_out_tokens
from ..service import SupervisorService


class TokenExpirer(SupervisorService):
    """Every ``SUPERVISOR_INTERVAL``: ``expire_timed_out_tokens()``."""

    name = "token_expirer"

    def run_once(self) -> int:
        return expire_timed_out_tokens()
