"""Fixtures of the replication tests: a real primary and hot standby, never skipped."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.replication.cluster import ReplicatedPair


@pytest.fixture(scope="module")
def pair() -> Iterator[ReplicatedPair]:
    """A primary and a streaming hot standby made with pg_basebackup, on loopback ports."""
    cluster = ReplicatedPair()
    try:
        yield cluster
    finally:
        cluster.close()
