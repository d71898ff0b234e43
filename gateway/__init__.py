"""Edge gateway for restaurant kitchens.

Orders from table-side tablets reach the kitchen display screens (KDS) exactly once, split by
station and timed so a table's dishes finish together, whatever restarts in between.
"""

__version__ = "0.1.0"
