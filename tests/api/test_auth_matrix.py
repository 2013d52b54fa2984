"""Every endpoint of the OpenAPI document: no token, a wrong one, a read and an operator token."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.support import OPERATOR_TOKEN, READ_TOKEN, create_event, running_api

NO_LIMITS = {"monitoring_api_rate_limits": "health=0,data=0,cycles=0,dashboard=0"}
PUBLIC = {"/openapi.json"}


def _operations(document: dict[str, Any], event_id: int) -> list[tuple[str, str, bool]]:
    """(method, concrete path, needs an operator) for every operation in the document."""
    found = []
    for path, operations in document["paths"].items():
        concrete = path.replace("{event_id}", str(event_id)).replace("{action}", "acknowledge")
        for method, operation in operations.items():
            needs_operator = method in ("post", "patch")
            found.append((method.upper(), concrete, needs_operator))
            assert "summary" in operation
    return found


async def _call(client: httpx.AsyncClient, method: str, path: str) -> httpx.Response:
    body = {"status": "INVESTIGATING"} if method == "PATCH" else {}
    return await client.request(method, path, json=body if method != "GET" else None)


async def test_every_endpoint_refuses_missing_and_wrong_tokens_and_read_tokens_cannot_act(
    db_dsn: str,
) -> None:
    event_id = await create_event(db_dsn)
    async with running_api(db_dsn, **NO_LIMITS) as api:
        async with api.client() as anonymous:
            document = (await anonymous.get("/openapi.json")).json()
        operations = _operations(document, event_id)
        assert len(operations) >= 20
        seen: dict[str, list[tuple[str, str, int]]] = {}
        for token in (None, "wrong-token-0000000000000", READ_TOKEN, OPERATOR_TOKEN):
            async with api.client(token) as client:
                for method, path, needs_operator in operations:
                    answer = await _call(client, method, path)
                    seen.setdefault(str(token), []).append((method, path, answer.status_code))
                    assert answer.status_code != 500, (token, method, path, answer.text)
                    assert answer.headers["content-type"].startswith(
                        ("application/json", "text/plain")
                    )
                    public = path in PUBLIC or path == "/metrics"
                    if token is None:
                        assert answer.status_code == (200 if public else 401), (method, path)
                    elif token.startswith("wrong"):
                        assert answer.status_code == (200 if path in PUBLIC else 401), path
                        assert "WWW-Authenticate" in answer.headers or path in PUBLIC
                    elif token == READ_TOKEN and needs_operator:
                        assert answer.status_code == 403, (method, path)
                    else:
                        assert answer.status_code not in (401, 403), (token, method, path)
    assert len(seen) == 4


@pytest.mark.parametrize("required", [True, False])
async def test_the_metrics_token_is_required_only_when_the_setting_says_so(
    db_dsn: str, required: bool
) -> None:
    flag = {"monitoring_api_metrics_token_required": str(required).lower()}
    async with running_api(db_dsn, **flag) as api:
        async with api.client() as anonymous:
            without = await anonymous.get("/metrics")
        async with api.client(READ_TOKEN) as reader:
            with_token = await reader.get("/metrics")

    assert without.status_code == (401 if required else 200)
    assert with_token.status_code == 200
    assert "festmon_health_status" in with_token.text
