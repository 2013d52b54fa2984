"""Bad input on every parameter is a 4xx naming the parameter, never a 500 (and never SQL)."""

from __future__ import annotations

import asyncpg
import pytest

from tests.api.support import OPERATOR_TOKEN, READ_TOKEN, create_event, running_api

NO_LIMITS = {"monitoring_api_rate_limits": "health=0,data=0,cycles=0,dashboard=0"}
HUGE = "9" * 30
TEN_KB = "x" * 10_240
INJECTION = "1' OR '1'='1'; DROP TABLE monitoring_events; --"
UNICODE = "Zoë🎪\u202e\u0301"
NUL = "a\x00b"

# (path, parameter, values that must be refused with a 400 naming the parameter)
TYPED = [
    ("/functions/v1/monitoring-api/events", "event_type", ["nope", INJECTION, UNICODE, TEN_KB]),
    ("/functions/v1/monitoring-api/events", "severity", ["SEVERE", INJECTION, NUL]),
    ("/functions/v1/monitoring-api/events", "status", ["CLOSED", UNICODE]),
    (
        "/functions/v1/monitoring-api/events",
        "start_date",
        ["2026-13-45", "yesterday", INJECTION, TEN_KB, UNICODE, NUL, "-1"],
    ),
    ("/functions/v1/monitoring-api/events", "end_date", ["2026-02-30T25:00", HUGE]),
    ("/functions/v1/monitoring-api/events", "page", ["-1", "0", HUGE, "1.5", "one", TEN_KB]),
    ("/functions/v1/monitoring-api/events", "per_page", ["-5", "0", "abc", UNICODE, HUGE]),
    ("/functions/v1/monitoring-api/events", "card_id", [TEN_KB, NUL]),
    ("/functions/v1/monitoring/events", "limit", ["-1", "0", HUGE, INJECTION]),
    ("/functions/v1/monitoring/events", "event_type", ["x"]),
    ("/functions/v1/monitoring-api/metrics", "start", ["not-a-date", TEN_KB, "2026-07-04T99"]),
    ("/functions/v1/monitoring-api/metrics", "end", [INJECTION, UNICODE]),
]


@pytest.mark.parametrize(("path", "name", "values"), TYPED)
async def test_a_bad_value_is_a_400_naming_the_parameter(
    db_dsn: str, path: str, name: str, values: list[str]
) -> None:
    async with running_api(db_dsn, **NO_LIMITS) as api, api.client(READ_TOKEN) as client:
        answers = [await client.get(path, params={name: value}) for value in values]

    for value, answer in zip(values, answers, strict=True):
        assert answer.status_code == 400, (name, value[:40], answer.text[:200])
        body = answer.json()
        assert body["error"] == "Bad Request"
        assert body["parameter"] == name
        assert name in body["message"]


async def test_free_text_filters_take_hostile_values_literally(db_dsn: str) -> None:
    await create_event(db_dsn, card="CARD-1")
    async with running_api(db_dsn, **NO_LIMITS) as api, api.client(READ_TOKEN) as client:
        answers = {
            value: await client.get("/events", params={"card_id": value})
            for value in (INJECTION, UNICODE, "%", "_", "CARD-%")
        }
    for value, answer in answers.items():
        assert answer.status_code == 200, value
        assert answer.json()["pagination"]["total"] == 0, value
    conn = await asyncpg.connect(db_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM monitoring_events") == 2
    finally:
        await conn.close()


async def test_dates_reversed_repeated_or_too_far_apart_are_refused(db_dsn: str) -> None:
    async with running_api(db_dsn, **NO_LIMITS) as api, api.client(READ_TOKEN) as client:
        reversed_range = await client.get(
            "/events", params={"start_date": "2026-07-05", "end_date": "2026-07-04"}
        )
        repeated = await client.get("/events?page=1&page=2")
        too_long = await client.get(
            "/functions/v1/monitoring-api/metrics",
            params={"start": "2026-01-01T00:00:00Z", "end": "2026-07-01T00:00:00Z"},
        )
        fine = await client.get(
            "/events", params={"start_date": "2026-07-04T18:00:00+02:00", "end_date": "2030-01-01"}
        )
    assert reversed_range.status_code == 400
    assert reversed_range.json()["parameter"] == "end_date"
    assert repeated.status_code == 400
    assert repeated.json()["parameter"] == "page"
    assert too_long.status_code == 400
    assert fine.status_code == 200


async def test_a_ten_kilobyte_query_string_and_unknown_paths_are_clean_4xx(db_dsn: str) -> None:
    async with running_api(db_dsn, **NO_LIMITS) as api, api.client(READ_TOKEN) as client:
        long_query = await client.get(f"/events?card_id={TEN_KB}&junk={TEN_KB[:100]}")
        unknown = await client.get("/functions/v1/monitoring/nope")
        wrong_method = await client.delete("/health")
        get_cycle = await client.get("/functions/v1/monitoring/cycle")
        head = await client.head("/health")
        head_cycle = await client.head("/cycle")
    assert long_query.status_code == 400
    assert unknown.status_code == 404
    assert "GET /health" in unknown.json()["available_endpoints"]
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"] == "Method Not Allowed"
    assert get_cycle.status_code == 405
    assert head.status_code == 200
    assert head.content == b""
    assert head_cycle.status_code == 405


@pytest.mark.parametrize(
    ("path", "body", "parameter"),
    [
        ("/events/abc/acknowledge", {}, "event_id"),
        (f"/events/{HUGE}/acknowledge", {}, "event_id"),
        ("/events/-1/acknowledge", {}, "event_id"),
        ("/events/1/explode", {}, "action"),
        ("/events/1/resolve", {"note": 42}, "note"),
        ("/events/1/resolve", {"note": TEN_KB}, "note"),
        ("/events/1/resolve", {"note": NUL}, "note"),
        ("/events/1/resolve", ["note"], "body"),
    ],
)
async def test_bad_lifecycle_requests_are_refused_before_the_database(
    db_dsn: str, path: str, body: object, parameter: str
) -> None:
    async with running_api(db_dsn, **NO_LIMITS) as api, api.client(OPERATOR_TOKEN) as client:
        answer = await client.post(path, json=body)
        not_json = await client.post("/events/1/resolve", content=b"{note: nope")
    assert answer.status_code == 400, answer.text
    assert answer.json()["parameter"] == parameter
    assert not_json.status_code == 400
    assert not_json.json()["parameter"] == "body"


async def test_no_endpoint_answers_500_to_hostile_queries_paths_or_bodies(db_dsn: str) -> None:
    event_id = await create_event(db_dsn)
    hostile_queries = [
        {"page": "-1", "per_page": HUGE, "limit": "-3", "start": "x", "start_date": TEN_KB},
        {"event_type": INJECTION, "severity": UNICODE, "status": NUL, "card_id": NUL},
        {"end": "2026-07-04T18:00:00+25:00", "end_date": "0000-00-00"},
        {"junk": TEN_KB},
    ]
    hostile_bodies: list[bytes] = [
        b"",
        b"null",
        b"[]",
        b'{"note": null, "status": 7}',
        b'{"note": "' + b"\\u0000" + b'"}',
        b"\xff\xfe not utf-8",
        b"[" * 5000 + b"]" * 5000,
        b'{"status": "RESOLVED"}',
    ]
    odd_ids = ["0", "%27%20OR%201=1", "%00", "1.5", "%F0%9F%8E%AA", str(event_id)]
    async with running_api(db_dsn, **NO_LIMITS) as api, api.client(OPERATOR_TOKEN) as client:
        document = (await client.get("/openapi.json")).json()
        answers = []
        for path, operations in document["paths"].items():
            for raw_id in odd_ids if "{event_id}" in path else [""]:
                concrete = path.replace("{event_id}", raw_id).replace("{action}", "resolve")
                for method in operations:
                    if method == "post" and (path.endswith(("/cycle", "/monitoring"))):
                        continue  # a cycle takes no input; running it 48 times proves nothing
                    for query in hostile_queries:
                        answers.append(
                            (
                                method,
                                concrete,
                                await client.request(method.upper(), concrete, params=query),
                            )
                        )
                    if method in ("post", "patch"):
                        for body in hostile_bodies:
                            answers.append(
                                (
                                    method,
                                    concrete,
                                    await client.request(method.upper(), concrete, content=body),
                                )
                            )

    assert len(answers) > 200
    failures = [(m, p, a.status_code, a.text[:120]) for m, p, a in answers if a.status_code >= 500]
    assert failures == []
    assert all(
        a.headers["content-type"].startswith(("application/json", "text/plain"))
        for _, _, a in answers
    )
