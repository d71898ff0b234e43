"""``python -m tests.support.failing_store N ARGS...``: the gateway command, whose store fails.

The N-th commit that carries order replies raises ``StoreError`` on the store's writer thread,
as a disk that went away would; every other commit is real. The rest of the arguments are the
``gateway`` command's. Used to check what a store failure mid-service does to a real process.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from gateway.cli import main
from gateway.errors import StoreError
from gateway.store.sqlite import Store


def _failing_commit(fail_at: int) -> Any:
    real = Store.commit
    seen = 0
    lock = threading.Lock()

    def commit(self: Store, batch: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal seen
        if getattr(batch, "replies", None):
            with lock:
                seen += 1
                failing = seen == fail_at
            if failing:
                raise StoreError(f"injected: the disk holding {self.path} went away")
        return real(self, batch, *args, **kwargs)

    return commit


if __name__ == "__main__":
    Store.commit = _failing_commit(int(sys.argv[1]))  # type: ignore[method-assign]
    sys.exit(main(sys.argv[2:]))
