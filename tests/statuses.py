"""The one table of HTTP statuses: the ``ai21.errors`` class a caller gets, and whether it is
retried (docs/errors-and-retries.md). Every test that checks the mapping reads it from here."""

from __future__ import annotations

from dataclasses import dataclass

import ai21.errors


@dataclass(frozen=True)
class Status:
    code: int
    error: type[Exception]
    retried: bool


STATUSES = [
    Status(400, ai21.errors.BadRequest, retried=False),
    Status(401, ai21.errors.Unauthorized, retried=False),
    Status(403, ai21.errors.AI21APIError, retried=False),
    Status(404, ai21.errors.AI21APIError, retried=False),
    Status(408, ai21.errors.AI21APIError, retried=True),
    Status(422, ai21.errors.UnprocessableEntity, retried=False),
    Status(424, ai21.errors.AI21APIError, retried=False),
    Status(429, ai21.errors.TooManyRequestsError, retried=True),
    Status(500, ai21.errors.AI21ServerError, retried=True),
    Status(502, ai21.errors.AI21APIError, retried=True),
    Status(503, ai21.errors.ServiceUnavailable, retried=True),
    Status(504, ai21.errors.AI21APIError, retried=True),
]
BY_CODE = {s.code: s for s in STATUSES}
RETRIED = [s.code for s in STATUSES if s.retried]
NOT_RETRIED = [s.code for s in STATUSES if not s.retried]
IDS = [str(s.code) for s in STATUSES]
