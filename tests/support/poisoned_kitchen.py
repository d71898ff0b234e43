"""``python -m tests.support.poisoned_kitchen TABLE ARGS...``: the gateway with a kitchen bug.

The kitchen raises ``RuntimeError`` for every order of table ``TABLE`` before it changes
anything (a bug, not bad input); every other order is taken as usual. The rest of the arguments
are the ``gateway`` command's. Used to see a message that no attempt can handle become a dead
letter in a real process, without stopping the kitchen for everyone else.
"""

from __future__ import annotations

import sys
from typing import Any

from gateway.cli import main
from gateway.routing.kitchen import Kitchen


def _poisoned(table: str) -> Any:
    real = Kitchen.accept

    def accept(self: Kitchen, order: Any, *args: Any, **kwargs: Any) -> Any:
        if order.table == table:
            raise RuntimeError(f"injected bug for table {table}")
        return real(self, order, *args, **kwargs)

    return accept


if __name__ == "__main__":
    Kitchen.accept = _poisoned(sys.argv[1])  # type: ignore[method-assign]
    sys.exit(main(sys.argv[2:]))
