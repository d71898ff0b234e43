"""The menu as tablets need it, built from the site file."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.contract import Menu, MenuItem, MenuModifier, Money

if TYPE_CHECKING:
    from datetime import datetime

    from gateway.config import SiteConfig

__all__ = ["build_menu"]


def build_menu(cfg: SiteConfig, now: datetime) -> Menu:
    """The site's menu, priced in its currency, published at ``now``."""
    cur = cfg.site.currency
    mods = {m.id: m for m in cfg.modifiers}
    groups = {g.id: g for g in cfg.groups}
    return Menu(
        site=cfg.site.id,
        languages=list(cfg.site.languages),
        items=[
            MenuItem(
                id=i.id,
                names=i.names,
                group=i.group,
                price=Money(amount=i.price, currency=cur),
                course=i.course or groups[i.group].course,
                allergens=list(i.allergens),
                modifiers=[
                    MenuModifier(
                        id=m,
                        names=mods[m].names,
                        price=Money(amount=mods[m].price, currency=cur),
                    )
                    for m in i.modifiers
                ],
                available=i.available,
            )
            for i in cfg.items
        ],
        published_at=now,
    )
