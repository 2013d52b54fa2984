"""Fixtures of the replication tests: a real primary and hot standby, never skipped."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.replication.cluster import ReplicatedPair


@pytest.fixture(scope="package")
def pair() -> Iterator[ReplicatedPair]:
    """A primary and a streaming hot standby made with pg_basebackup, on loopback ports; one
    for the package (a test that stops a server starts it again; the failover drill has its own)."""
    cluster = ReplicatedPair()
    try:
        yield cluster
    finally:
        cluster.close()
