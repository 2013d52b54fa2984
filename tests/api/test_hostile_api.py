"""The hostile corpus through the HTTP API (issue 13.1): every stored string comes back exact in
the JSON, and the raw body holds no character a terminal acts on (`curl` on an operator's
terminal is a surface too) — including the error answers that echo what the client sent."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from festmon_tui.api.params import MAX_TEXT
from tests.api.support import OPERATOR_TOKEN, READ_TOKEN, create_event, running_api
from tests.hostile_corpus import HOSTILE, assert_terminal_safe


@pytest.mark.parametrize("name", sorted(HOSTILE))
async def test_every_hostile_string_comes_back_exact_and_terminal_safe(
    db_dsn: str, name: str
) -> None:
    value = HOSTILE[name]
    note = value[:4000]  # the API's limit on a note (a longer one is a 400, tested elsewhere)
    data = json.dumps({"device_id": value, "note": value})
    event_id = await create_event(db_dsn, card=value, data=data)
    async with running_api(db_dsn) as api:
        async with api.client(OPERATOR_TOKEN) as operator:
            acted = await operator.post(f"/events/{event_id}/resolve", json={"note": note})
        async with api.client(READ_TOKEN) as client:
            answers = [
                await client.get("/events", params={"card_id": value}),
                await client.get(f"/events/{event_id}"),
                await client.get(
                    "/functions/v1/monitoring/events", params={"card_id": value, "limit": 5}
                ),
                await client.get("/functions/v1/monitoring-api/events", params={"search": value}),
                # Errors that echo what the client sent.
                await client.get("/events", params={"severity": value}),
                await client.get(f"/events/{quote(value[:200], safe='')}"),
            ]

    assert acted.status_code == 200, acted.text
    for answer in [acted, *answers]:
        assert_terminal_safe(answer.content)
        answer.json()  # still a valid document
    listed, one = answers[0].json(), answers[1].json()
    if len(value) <= MAX_TEXT:
        assert [e["card_id"] for e in listed["events"]] == [value]
    else:  # no real card id is that long: the filter is refused, by name
        assert answers[0].status_code == 400
        assert listed["parameter"] == "card_id"
    assert one["card_id"] == value
    assert one["event_data"] == {"device_id": value, "note": value}
    assert one["resolution_notes"] == note
    assert answers[4].status_code == 400
