"""Where the time goes: py-spy's raw (collapsed) stacks sorted into the pipeline's stages.

``python bench/telemetry/where.py FILE`` reads what ``py-spy record -f raw`` wrote (one line per
stack: ``frame;frame;... count``) and prints each stage's share of the samples, the first
matching rule winning (innermost stages first), then the functions with the most samples of
their own. ``run.py --profile CASE`` records and prints this for a case's measurement window.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

#: (stage, frames that put a sample in it); checked in this order, a frame anywhere in the stack
STAGES: list[tuple[str, tuple[str, ...]]] = [
    (
        "bench: export check, latency bookkeeping",
        ("export_counts", "done_times", "latencies", "verify_synth"),
    ),
    (
        "bench: load generator (make + take)",
        ("Harness.take_next", "Harness.paced", "Harness.backlog", "Synth."),
    ),
    ("recorder: readings -> rows (lineproto)", ("Recorder._rows",)),
    ("recorder: History.append (SQLite insert+commit)", ("History.append",)),
    ("recorder: the rest", ("Recorder.",)),
    ("sink: gzip (influxdb-client, level 9)", ("compress (gzip.py", "compress (zlib")),
    ("sink: HTTP write (influxdb-client, urllib3)", ("InfluxWriter.write",)),
    ("sink: HistoryReader.lines (SQLite read)", ("HistoryReader.lines",)),
    ("sink: cursor and state saves", ("save_cursor", "save_sink")),
    ("sink: the rest", ("Sink.",)),
    (
        "asyncio / thread pool plumbing",
        (
            "_WorkItem.run",
            "_worker (concurrent",
            "Runner.run",
            "run_forever",
            "_run_once",
            "Handle._run",
        ),
    ),
]


def stage_of(frames: list[str]) -> str:
    text = ";".join(frames)
    for stage, marks in STAGES:
        if any(m in text for m in marks):
            return stage
    return "other"


def summarize(path: str, top: int = 25) -> str:
    total = 0
    stages: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.rstrip()
        if not line or " " not in line:
            continue
        stack, n_text = line.rsplit(" ", 1)
        n = int(n_text)
        frames = [re.sub(r":\d+\)", ")", f) for f in stack.split(";")]
        total += n
        stages[stage_of(frames)] += n
        own[frames[-1]] += n
    if not total:
        return f"{path}: no samples"
    out = [f"{total} samples", "", "| stage | share of samples |", "|---|---|"]
    out += [f"| {s} | {100 * n / total:.1f} % |" for s, n in stages.most_common()]
    out += ["", "| function (own samples) | share |", "|---|---|"]
    out += [f"| {f} | {100 * n / total:.1f} % |" for f, n in own.most_common(top)]
    return "\n".join(out)


if __name__ == "__main__":
    print(summarize(sys.argv[1]))
