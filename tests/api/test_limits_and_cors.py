"""Per-token limits with X-RateLimit-* headers and 429 + Retry-After; CORS only when configured."""

from __future__ import annotations

from festmon_tui.api.limits import DEFAULT_LIMITS, LimitClass, RateLimiter, parse_limits
from tests.api.support import OPERATOR_TOKEN, READ_TOKEN, running_api


def test_the_default_limits_are_the_originals_reference() -> None:
    assert parse_limits("") == {
        LimitClass.HEALTH: 60,
        LimitClass.DATA: 100,
        LimitClass.CYCLES: 10,
        LimitClass.DASHBOARD: 30,
    }
    assert parse_limits("health=5,cycles=0")[LimitClass.HEALTH] == 5


def test_a_window_refills_after_its_minute() -> None:
    now = [120.0]
    limiter = RateLimiter(dict(DEFAULT_LIMITS) | {LimitClass.HEALTH: 2}, clock=lambda: now[0])
    verdicts = [limiter.check("grafana", LimitClass.HEALTH) for _ in range(3)]
    other = limiter.check("alice", LimitClass.HEALTH)
    now[0] = 180.0
    refilled = limiter.check("grafana", LimitClass.HEALTH)

    assert [v.allowed for v in verdicts] == [True, True, False]
    assert verdicts[2].retry_after_s == 60
    assert other.allowed
    assert refilled.allowed and refilled.remaining == 1


async def test_each_token_has_its_own_budget_and_the_429_says_when_to_retry(db_dsn: str) -> None:
    async with running_api(db_dsn, monitoring_api_rate_limits="health=3") as api:
        async with api.client(READ_TOKEN) as reader, api.client(OPERATOR_TOKEN) as operator:
            answers = [await reader.get("/health") for _ in range(4)]
            other = await operator.get("/health")
            data = await reader.get("/status")

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert answers[0].headers["X-RateLimit-Limit"] == "3"
    refused = answers[3]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.json()["error"] == "Too Many Requests"
    assert refused.json()["retry_after"] == int(refused.headers["Retry-After"])
    assert other.status_code == 200
    assert data.status_code == 200
    assert data.headers["X-RateLimit-Limit"] == "100"


async def test_no_cors_headers_unless_origins_are_configured(db_dsn: str) -> None:
    origin = {"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    async with running_api(db_dsn) as api, api.client(READ_TOKEN) as client:
        closed = await client.get("/health", headers={"Origin": "https://evil.example"})
        preflight = await client.options("/health", headers=origin)
    async with (
        running_api(db_dsn, monitoring_api_cors_origins="https://admin.example") as api,
        api.client(READ_TOKEN) as client,
    ):
        allowed = await client.get("/health", headers={"Origin": "https://admin.example"})
        other = await client.get("/health", headers={"Origin": "https://evil.example"})

    assert "access-control-allow-origin" not in closed.headers
    assert "access-control-allow-origin" not in preflight.headers
    assert allowed.headers["access-control-allow-origin"] == "https://admin.example"
    assert "access-control-allow-origin" not in other.headers


def test_the_limiter_forgets_finished_windows_when_many_callers_were_seen() -> None:
    now = [0.0]
    limiter = RateLimiter(dict(DEFAULT_LIMITS), clock=lambda: now[0])
    for n in range(10_000):
        limiter.check(f"address:10.0.{n // 256}.{n % 256}", LimitClass.HEALTH)
    now[0] = 60.0
    limiter.check("address:192.0.2.1", LimitClass.HEALTH)

    assert len(limiter._windows) == 1
