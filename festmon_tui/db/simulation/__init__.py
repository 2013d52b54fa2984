"""The simulated festival's SQL: payments through the procedures, anomaly writes, ground truth."""

from festmon_tui.db.simulation.demo import (
    DEMO_DATABASE,
    payment_schema_state,
    prepare_demo_database,
    with_database,
)
from festmon_tui.db.simulation.history import HistoryWriter
from festmon_tui.db.simulation.records import (
    BarOrder,
    GroundTruth,
    HistoryBatch,
    HistoryEntry,
    Recharge,
    RunRecord,
    Scan,
    SimulationRefused,
    Truth,
    Written,
)
from festmon_tui.db.simulation.store import SimulationStore

__all__ = [
    "DEMO_DATABASE",
    "BarOrder",
    "GroundTruth",
    "HistoryBatch",
    "HistoryEntry",
    "HistoryWriter",
    "Recharge",
    "RunRecord",
    "Scan",
    "SimulationRefused",
    "SimulationStore",
    "Truth",
    "Written",
    "payment_schema_state",
    "prepare_demo_database",
    "with_database",
]
