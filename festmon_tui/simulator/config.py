"""What a simulation run is asked to do, and the detection rules' limits it must respect."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the demo's dashboard reads these constants before pydantic is imported
    from festmon_tui.settings import Settings

DEFAULT_CARDS = 2000
DEFAULT_BARS = 10
# A busy Saturday night: 2 000 visitors each paying every ~7 minutes.
DEFAULT_RATE_TPS = 5.0
DEFAULT_ANOMALIES_PER_MIN = 6.0
MIN_RATE_TPS = 0.5
MAX_RATE_TPS = 5000.0


@dataclass(frozen=True)
class RuleLimits:
    """The thresholds and windows of the detection rules (SPEC §6.1), from festmon's settings.

    Normal traffic is shaped to stay clear of every one of them, so that any event is caused by
    an injected anomaly.
    """

    nfc_window_s: float = 5.0
    race_window_s: float = 2.0
    consecutive_count: int = 3
    consecutive_window_s: float = 600.0
    spike_window_s: float = 900.0
    spike_min_transactions: int = 10
    spike_rate: float = 0.05
    medium_interval_s: float = 120.0
    critical_interval_s: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RuleLimits:
        return cls(
            nfc_window_s=settings.monitoring_duplicate_nfc_window_ms / 1000,
            race_window_s=settings.monitoring_race_window_ms / 1000,
            consecutive_count=settings.monitoring_consecutive_failure_count,
            consecutive_window_s=float(settings.monitoring_consecutive_failure_window_s),
            spike_window_s=float(settings.monitoring_spike_window_s),
            spike_min_transactions=settings.monitoring_spike_min_transactions,
            spike_rate=float(settings.monitoring_spike_rate_percent) / 100,
            medium_interval_s=settings.monitoring_interval_medium / 1000,
            critical_interval_s=settings.monitoring_interval_critical / 1000,
        )

    @property
    def card_gap_s(self) -> float:
        """Least time between two operations of one card: clear of the NFC and race windows,
        with room for the reader's processing time (a tap is logged up to ~0.5 s early)."""
        return max(self.nfc_window_s, self.race_window_s) + 1.5

    @property
    def failure_memory_s(self) -> float:
        """How long a card's failure counts against it (the consecutive-failure window + 1 min)."""
        return self.consecutive_window_s + 60.0


@dataclass(frozen=True)
class SimulationConfig:
    """One run: the festival's size, the traffic, the anomalies, the seed."""

    seed: int
    cards: int = DEFAULT_CARDS
    bars: int = DEFAULT_BARS
    rate_tps: float = DEFAULT_RATE_TPS
    anomalies_per_min: float = DEFAULT_ANOMALIES_PER_MIN
    duration_s: float | None = None
    # The festival's earlier activity written before the live traffic starts, so that the
    # dashboard has history and the spike rule's window is full from the first second.
    history_s: float = 1200.0
    history_max_rows: int = 100_000
    kinds: tuple[str, ...] = ()  # anomaly kinds to inject (empty: all)
    duplicate_scan_share: float = 0.005
    read_failure_share: float = 0.002
    natural_failure_cap: float = 0.006
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def inject(self) -> bool:
        return self.anomalies_per_min > 0

    @property
    def effective_history_s(self) -> float:
        if self.history_s <= 0:
            return 0.0
        return min(self.history_s, self.history_max_rows / self.rate_tps)

    def as_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["kinds"] = list(self.kinds)
        return doc


def cards_needed(config: SimulationConfig, limits: RuleLimits, spike_rows: int) -> int:
    """Cards for the rate: each card pays at most every card_gap_s; a spike's refused orders
    land on distinct cards, and cards without a recent failure must remain for the anomalies
    that write failures themselves."""
    busy = math.ceil(config.rate_tps * limits.card_gap_s * 3)
    return max(config.cards, busy, math.ceil(spike_rows * 1.5))
