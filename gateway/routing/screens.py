"""Which kitchen screens have gone silent, and where their tickets go until they are back.

A screen is silent when nothing (heartbeat or event) came from it for ``kds.silence_timeout_s``.
Its tickets then go to its backup station, unless it has none or the backup is silent too; either
way people are alerted (``kds_silent``: critical when nobody sees its tickets, high while a
backup takes them), and the alert is cleared when the screen is back.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from gateway.routing.outbound import alert, outbound

if TYPE_CHECKING:
    from gateway.clock import Clock
    from gateway.config import SiteConfig
    from gateway.events import OutboundEvent
    from gateway.routing.kitchen import Kitchen
    from gateway.routing.service import OrderStats

__all__ = ["ScreenWatch"]

log = logging.getLogger(__name__)


class ScreenWatch:
    """Last-seen times of the screens; redirects a silent one's tickets to its backup."""

    def __init__(self, cfg: SiteConfig, kitchen: Kitchen, clock: Clock, stats: OrderStats) -> None:
        """Watch ``cfg``'s stations; redirects go through ``kitchen`` and count in ``stats``."""
        self._cfg = cfg
        self._kitchen = kitchen
        self._clock = clock
        self._stats = stats
        self._backups = {s.id: s.backup for s in cfg.stations}
        self._last_seen: dict[str, float] = {}
        self._silent: set[str] = set()

    def start(self, mono: float) -> None:
        """Count every station as just seen: a grace period after start-up."""
        for s in self._cfg.stations:
            self._last_seen[s.id] = mono

    def heard(self, station: str, mono: float) -> None:
        """Something came from ``station``'s screen at ``mono`` (monotonic seconds)."""
        self._last_seen[station] = mono

    def check(self, mono: float) -> list[OutboundEvent]:
        """Redirect screens that fell silent, restore those that are back; returns what to send."""
        outs: list[OutboundEvent] = []
        timeout = self._cfg.kds.silence_timeout_s
        now = self._clock.now()
        for station, seen in self._last_seen.items():
            silent = mono - seen > timeout
            if silent and station not in self._silent:
                self._silent.add(station)
                backup = self._backups.get(station)
                level = "critical"  # nobody sees these tickets
                if backup is None:
                    where = "it has no backup"
                elif backup in self._silent:
                    where = f"its backup {backup} is silent too: nobody sees these tickets"
                    backup = None
                else:
                    where = f"its tickets now go to {backup}"
                    level = "high"
                log.warning("screen at %s silent for %.0f s: %s", station, mono - seen, where)
                outs.append(
                    alert(
                        level,
                        "kds_silent",
                        station,
                        f"the screen at {station} has been silent for {mono - seen:.0f} s; {where}",
                    )
                )
                if backup:
                    self._stats.redirects += 1
                    outs += outbound(self._kitchen.redirect(station, backup, now))
            elif not silent and station in self._silent:
                self._silent.discard(station)
                self._kitchen.restore_station(station)
                log.info("screen at %s is back", station)
                outs.append(
                    alert(
                        "clear",
                        "kds_silent",
                        station,
                        f"the screen at {station} is back; new tickets go to it again",
                    )
                )
        return outs
