"""The events endpoints over a real database: true totals, filters, the lifecycle, exact text."""

from __future__ import annotations

import asyncpg

from tests.api.support import (
    OPERATOR_TOKEN,
    READ_TOKEN,
    create_event,
    eventually,
    running_api,
)

EVENTS = "/functions/v1/monitoring-api/events"


async def test_pagination_reports_the_real_total_and_whether_a_next_page_exists(
    db_dsn: str,
) -> None:
    ids = [await create_event(db_dsn, card=f"CARD-{n}") for n in range(7)]
    stored = await _count(db_dsn)  # the seven plus the schema's seed event
    async with running_api(db_dsn) as api, api.client(READ_TOKEN) as client:
        first = (await client.get(EVENTS, params={"per_page": 3})).json()
        last = (await client.get(EVENTS, params={"per_page": 3, "page": 3})).json()

    assert stored == 8
    assert first["pagination"] == {
        "total": 8,
        "page": 1,
        "per_page": 3,
        "total_pages": 3,
        "has_next": True,
        "has_prev": False,
    }
    assert [e["event_id"] for e in first["events"]] == sorted(ids, reverse=True)[:3]
    assert len(last["events"]) == 2
    assert last["pagination"]["has_next"] is False
    assert last["pagination"]["has_prev"] is True
    assert first["total_critical"] == 7


async def _count(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM monitoring_events"))
    finally:
        await conn.close()


async def test_filters_narrow_the_total_and_are_echoed(db_dsn: str) -> None:
    await create_event(db_dsn, card="CARD-A", severity="CRITICAL")
    await create_event(db_dsn, card="CARD-B", severity="HIGH", algorithm="other_rule")
    async with running_api(db_dsn) as api, api.client(READ_TOKEN) as client:
        answer = await client.get(
            EVENTS, params={"severity": "HIGH", "card_id": "CARD-B", "per_page": "500"}
        )

    body = answer.json()
    assert answer.status_code == 200
    assert body["pagination"]["total"] == 1
    assert body["pagination"]["per_page"] == 100  # capped
    assert [e["card_id"] for e in body["events"]] == ["CARD-B"]
    assert body["filters_applied"]["severity"] == "HIGH"
    assert body["filters_applied"]["card_id"] == "CARD-B"
    assert body["total_open"] == 1


async def test_hostile_stored_strings_come_back_as_exact_json(db_dsn: str) -> None:
    card = "\x1b[2J\x1b]0;pwned\x07<script>alert(1)</script>'\"; DROP TABLE x; --\u202e\u2028"
    data = '{"device": "\\u001b[31mred", "note": "[bold]markup[/bold]"}'
    event_id = await create_event(db_dsn, card=card, data=data)
    async with running_api(db_dsn) as api, api.client(READ_TOKEN) as client:
        listed = (await client.get("/events", params={"card_id": card})).json()
        one = (await client.get(f"/events/{event_id}")).json()

    assert [e["card_id"] for e in listed["events"]] == [card]
    assert one["card_id"] == card
    assert one["event_data"] == {"device": "\x1b[31mred", "note": "[bold]markup[/bold]"}


async def test_resolving_through_the_api_is_audited_with_the_token_name(db_dsn: str) -> None:
    event_id = await create_event(db_dsn)
    async with running_api(db_dsn) as api, api.client(OPERATOR_TOKEN) as client:
        acked = await client.post(f"/events/{event_id}/acknowledge", json={})
        resolved = await client.post(
            f"/functions/v1/monitoring/events/{event_id}/resolve", json={"note": "refunded"}
        )
        again = await client.post(f"/events/{event_id}/resolve", json={"note": "twice"})
        no_note = await client.post(f"/events/{event_id}/false-positive", json={})

    assert acked.status_code == 200
    assert acked.json()["event"]["status"] == "INVESTIGATING"
    assert resolved.status_code == 200
    assert resolved.json()["event"]["status"] == "RESOLVED"
    assert again.status_code == 409
    assert "already RESOLVED" in again.json()["message"]
    assert no_note.status_code == 400
    assert no_note.json()["parameter"] == "note"
    conn = await asyncpg.connect(db_dsn)
    try:
        rows = await conn.fetch(
            "SELECT action, actor->>'operator' AS who, note FROM monitoring_event_actions"
            " WHERE event_id = $1 ORDER BY action_id",
            event_id,
        )
    finally:
        await conn.close()
    assert [(r["action"], r["who"], r["note"]) for r in rows][-2:] == [
        ("acknowledge", "alice", None),
        ("resolve", "alice", "refunded"),
    ]


async def test_patch_with_a_status_applies_the_matching_action(db_dsn: str) -> None:
    event_id = await create_event(db_dsn)
    async with running_api(db_dsn) as api, api.client(OPERATOR_TOKEN) as client:
        answer = await client.patch(
            f"/events/{event_id}", json={"status": "FALSE_POSITIVE", "note": "test card"}
        )
        missing = await client.post("/events/999999/acknowledge", json={})

    assert answer.status_code == 200
    assert answer.json()["event"]["status"] == "FALSE_POSITIVE"
    assert answer.json()["event"]["resolution_notes"] == "test card"
    assert missing.status_code == 404


async def test_the_processor_events_endpoint_counts_every_match_not_the_page(
    db_dsn: str,
) -> None:
    for n in range(4):
        await create_event(db_dsn, card=f"CARD-{n}")
    async with running_api(db_dsn) as api, api.client(READ_TOKEN) as client:
        body = (
            await client.get(
                "/functions/v1/monitoring/events",
                params={"limit": 2, "event_type": "balance_discrepancy"},
            )
        ).json()

    assert body["total"] == 4
    assert body["returned"] == 2
    assert body["filters_applied"] == {
        "event_type": "balance_discrepancy",
        "severity": None,
        "status": None,
        "limit": 2,
    }


async def test_health_is_503_unknown_on_a_database_without_festmons_schema(
    empty_db_dsn: str,
) -> None:
    async with (
        running_api(empty_db_dsn, connected=False) as api,
        api.client(READ_TOKEN) as client,
    ):
        await eventually(lambda: api.service.state.last_error)
        answers = [
            await client.get(path)
            for path in ("/health", "/functions/v1/monitoring/health", "/events")
        ]

    assert [a.status_code for a in answers] == [503, 503, 503]
    assert [a.json()["status"] for a in answers[:2]] == ["UNKNOWN", "UNKNOWN"]
    assert "festmon db migrate" in answers[0].json()["database"]["error"]
    assert "festmon db migrate" in answers[2].json()["message"]
