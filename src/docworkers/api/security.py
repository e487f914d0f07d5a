"""The optional bearer token (``DOCWORKERS_API_TOKEN``) required by every data endpoint."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from docworkers.api.errors import ApiError
from docworkers.api.state import api_state

# auto_error=False: a missing or non-Bearer header reaches us as None and gets our error body.
# Declared as a dependency so the OpenAPI page offers an "Authorize" button.
_bearer = HTTPBearer(auto_error=False, description="DOCWORKERS_API_TOKEN, when it is set")


async def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    expected = api_state(request).settings.api_token
    if not expected:
        return
    given = credentials.credentials if credentials is not None else ""
    # compare_digest: the comparison takes the same time wherever the first difference is.
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(
            401, "unauthorized",
            "a valid API token is required: send the header 'Authorization: Bearer <token>' "
            "with the server's DOCWORKERS_API_TOKEN" if not given else "the API token is wrong",
            headers={"WWW-Authenticate": "Bearer"},
        )
