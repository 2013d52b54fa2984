"""Evidence told in sentences, per detection rule, from an event's event_data (always literal)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from rich.text import Text

from festmon_tui.models import Event
from festmon_tui.ui.display import EMPTY, clean, money

Explainer = Callable[[Event, dict[str, Any], tzinfo], list[str]]

_SHOWN_IDS = 5
_SOURCES = {
    "last_balance_row": "the balance left by its latest completed transaction",
    "signed_sum": "credits minus debits (no row carries balances)",
}


def _get(data: dict[str, Any], *names: str) -> Any:
    for name in names:
        if data.get(name) is not None:
            return data[name]
    return None


def _dec(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _money(value: Any) -> str:
    number = _dec(value)
    return money(number) if number is not None else clean(str(value)) if value else EMPTY


def _signed(value: Any) -> str:
    number = _dec(value)
    if number is None:
        return EMPTY
    return ("+" if number > 0 else "") + money(number)


def _when(value: Any, tz: tzinfo) -> str:
    if not value:
        return EMPTY
    try:
        return datetime.fromisoformat(str(value)).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return clean(str(value), max_len=40)


def _ids(value: Any) -> str:
    if not isinstance(value, list) or not value:
        return EMPTY
    shown = ", ".join(
        clean(json.dumps(v, default=str) if isinstance(v, dict | list) else str(v), max_len=60)
        for v in value[:_SHOWN_IDS]
    )
    more = len(value) - _SHOWN_IDS
    return shown + (f" (+{more} more)" if more > 0 else "")


def _failure_on_debit(event: Event, d: dict[str, Any], tz: tzinfo) -> list[str]:
    before, after = _get(d, "previous_balance"), _get(d, "new_balance")
    new, old = _dec(after), _dec(before)
    change = new - old if new is not None and old is not None else None
    kind = clean(str(_get(d, "transaction_type") or "transaction"), max_len=30)
    amount = _get(d, "amount_involved")
    of = f" of {_money(amount)}" if amount is not None else ""
    lines = [
        f"A FAILED {kind}{of} still changed the card's balance: "
        f"{_money(before)} → {_money(after)} ({_signed(change)}).",
        "A failed payment must leave the balance unchanged, so this money moved without a sale.",
    ]
    if _get(d, "current_balance") is not None:
        lines.append(f"The card holds {_money(d['current_balance'])} now.")
    when = _get(d, "transaction_timestamp", "timestamp")
    if when:
        lines.append(f"Transaction time: {_when(when, tz)}.")
    return lines


def _consecutive(event: Event, d: dict[str, Any], tz: tzinfo) -> list[str]:
    n = _get(d, "failure_count", "failed_count")
    span = _get(d, "time_span_minutes", "window_minutes")
    lines = [
        f"{clean(str(n or '?'))} failed transactions on this card"
        + (f" within {clean(str(span))} minutes" if span is not None else "")
        + ".",
    ]
    first, last = _get(d, "first_failure"), _get(d, "last_failure")
    if first or last:
        lines.append(f"First {_when(first, tz)}, last {_when(last, tz)}.")
    ids = _get(d, "failed_transactions", "transaction_ids")
    if ids:
        lines.append(f"Failed transactions: {_ids(ids)}.")
    lines.append("Repeated failures on one card: a broken reader, a blocked card or an attack.")
    return lines


def _spike(event: Event, d: dict[str, Any], tz: tzinfo) -> list[str]:
    failed, total = _get(d, "failed_transactions"), _get(d, "total_transactions")
    rate, threshold = _get(d, "failure_rate_percent"), _get(d, "threshold_percent")
    window = _get(d, "time_window_minutes", "window_minutes")
    return [
        f"{clean(str(failed))} of {clean(str(total))} transactions failed"
        + (f" in the last {clean(str(window))} minutes" if window is not None else "")
        + f": {clean(str(rate))} %"
        + (f" (threshold {clean(str(threshold))} %)" if threshold is not None else "")
        + ".",
        "A festival-wide failure rate points at the payment service or the network, not a card.",
    ]


def _mismatch(event: Event, d: dict[str, Any], tz: tzinfo) -> list[str]:
    actual = _get(d, "actual_balance", "card_balance")
    expected = _get(d, "expected_balance", "ledger_balance")
    diff = _get(d, "discrepancy", "difference")
    lines = [
        f"The card holds {_money(actual)} but its ledger implies {_money(expected)}: "
        f"{_signed(diff)} that no transaction explains."
    ]
    source = _get(d, "expected_source", "basis")
    if source:
        lines.append(
            f"Expected balance: {_SOURCES.get(str(source), clean(str(source), max_len=60))}."
        )
    n, last = _get(d, "transaction_count"), _get(d, "last_transaction", "last_log_id")
    if n is not None:
        when = _when(last, tz) if last else EMPTY
        lines.append(f"Ledger rows: {clean(str(n))}; last at {when}.")
    lines.append("The ledger below shows the card's balance chain and what it holds now.")
    return lines


def _chain_break(event: Event, d: dict[str, Any], tz: tzinfo) -> list[str]:
    started = _get(d, "previous_balance")
    left = _get(d, "preceding_new_balance", "expected_previous_balance")
    lines = []
    if left is not None:
        gap = _get(d, "chain_gap")
        lines.append(
            f"A completed transaction started from {_money(started)}, but the card's previous "
            f"completed transaction had left {_money(left)}"
            + (f" (gap {_signed(gap)})." if gap is not None else ".")
        )
    actual, expected = _get(d, "actual_change"), _get(d, "expected_change")
    if actual is not None and expected is not None and _dec(actual) != _dec(expected):
        lines.append(
            f"Its balance changed by {_signed(actual)} where its amount and type imply "
            f"{_signed(expected)}."
        )
    kinds = _get(d, "break_kinds", "reason")
    if kinds:
        shown = (
            ", ".join(clean(str(k), max_len=30) for k in kinds)
            if isinstance(kinds, list)
            else clean(str(kinds), max_len=60)
        )
        lines.append(f"Kind of break: {shown}.")
    lines.append("A lost update or a torn write: two writers raced, or a write was only half done.")
    return lines


def _negative(event: Event, d: dict[str, Any], tz: tzinfo) -> list[str]:
    balance = _get(d, "negative_balance", "balance", "amount")
    return [
        f"The card's balance is {_money(balance)}, below zero.",
        "Payments check funds first, so a negative balance means a check was bypassed.",
    ]


def _duplicate_scan(event: Event, d: dict[str, Any], tz: tzinfo) -> list[str]:
    n = _get(d, "scan_count")
    gap = _get(d, "min_gap_seconds", "gap_seconds", "time_span_seconds")
    threshold = _get(d, "threshold_seconds", "window_seconds")
    lines = [
        f"The card was scanned {clean(str(n or 2))} times "
        + (f"{clean(str(gap))} s apart" if gap is not None else "in quick succession")
        + (f" (threshold {clean(str(threshold))} s)." if threshold is not None else "."),
    ]
    times = _get(d, "scan_timestamps")
    if isinstance(times, list) and times:
        lines.append("Scans: " + ", ".join(_when(t, tz) for t in times[:_SHOWN_IDS]) + ".")
    lines.append("A double tap the debouncer missed can charge a customer twice.")
    return lines


def _race(event: Event, d: dict[str, Any], tz: tzinfo) -> list[str]:
    n = _get(d, "concurrent_count", "transaction_count")
    span = _get(d, "min_gap_seconds", "time_span_seconds", "gap_seconds")
    lines = [
        f"{clean(str(n or 2))} transactions on this card "
        + (f"{clean(str(span))} s apart" if span is not None else "at nearly the same time")
        + " (not retries of one request).",
    ]
    ids = _get(d, "transaction_ids")
    if ids:
        lines.append(f"Transactions: {_ids(ids)}.")
    types = _get(d, "transaction_types")
    if isinstance(types, list) and types:
        lines.append("Types: " + ", ".join(clean(str(t), max_len=30) for t in types[:6]) + ".")
    lines.append("Concurrent writes to one balance can lose an update.")
    return lines


EXPLAINERS: dict[str, Explainer] = {
    "balance_deduction_on_failure": _failure_on_debit,
    "consecutive_failures": _consecutive,
    "system_failure_spike": _spike,
    "balance_mismatch_detection": _mismatch,
    "balance_chain_break": _chain_break,
    "negative_balance_detection": _negative,
    "temporal_duplicate_detection": _duplicate_scan,
    "concurrent_transaction_detection": _race,
}


def explain(event: Event, tz: tzinfo) -> list[Text]:
    """Human sentences for the event's rule; unknown rules say which rule fired."""
    explainer = EXPLAINERS.get(event.detection_algorithm)
    if explainer is None:
        name = clean(event.detection_algorithm, max_len=60)
        return [Text(f"Reported by rule {name}; its evidence is listed below.")]
    try:
        lines = explainer(event, event.event_data, tz)
    except (TypeError, ValueError, ArithmeticError):  # evidence of an unexpected shape
        lines = ["The evidence has an unexpected shape; it is listed below as stored."]
    return [Text(line) for line in lines]


def flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """('a.b', 'value') pairs, lists kept short, every value made literal."""
    pairs: list[tuple[str, str]] = []
    for key, value in data.items():
        name = f"{prefix}{clean(str(key), max_len=40)}"
        if isinstance(value, dict):
            pairs.extend(flatten(value, name + "."))
        elif isinstance(value, list):
            pairs.append((name, _ids(value) if value else "[]"))
        else:
            pairs.append((name, clean(str(value), max_len=200)))
    return pairs


def flags(context: dict[str, Any]) -> Sequence[str]:
    """Names of the context flags that are set (true)."""
    return [clean(str(k), max_len=40) for k, v in context.items() if v is True]


def raw_json(data: dict[str, Any]) -> Text:
    return Text(clean(json.dumps(data, indent=2, default=str, ensure_ascii=False), multiline=True))
