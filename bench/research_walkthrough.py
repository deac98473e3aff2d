"""The researcher's walk through a finished study, over HTTP as an admin: pages, timings, the
recommendation and the report, as a person would click through them.

    rlhf raters invite lead --admin          # prints /invite#TOKEN once
    python bench/research_walkthrough.py --base-url http://127.0.0.1:8000 --token TOKEN \\
        --study 1 --runs 1,2 [--out report.md]

Prints one line per page (status, milliseconds cold and warm, bytes), then the recommendation's
headline and rationale as the report states them.
"""

from __future__ import annotations

import argparse
import json
import re
import time
import urllib.error
from pathlib import Path

from judging.studies.simulated import RaterClient


def _timed(client: RaterClient, path: str) -> tuple[int, float, str]:
    start = time.perf_counter()
    try:
        body, status = client.get(path), 200
    except urllib.error.HTTPError as exc:
        body, status = exc.read().decode(errors="replace"), exc.code
    return status, (time.perf_counter() - start) * 1000, body


def _charts(body: str) -> int:
    return len(re.findall(r'data-chart=|class="chart"', body))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--token", required=True, help="an admin invite token (rlhf raters invite)")
    parser.add_argument("--study", type=int, required=True)
    parser.add_argument("--runs", required=True, help="comma-separated run ids to overlay")
    parser.add_argument("--out", type=Path, default=None, help="save the Markdown report here")
    args = parser.parse_args()
    client = RaterClient(args.base_url, timeout=300)
    client.login(args.token)
    runs = [int(r) for r in args.runs.split(",")]
    pages = [
        ("overview, runs overlaid", "/research?" + "&".join(f"run={r}" for r in runs)),
        *[(f"run {r}", f"/research/runs/{r}") for r in runs],
        ("study", f"/research/studies/{args.study}"),
        ("report.md", f"/research/studies/{args.study}/report.md"),
        ("report.html", f"/research/studies/{args.study}/report.html"),
    ]
    print("| page | status | cold ms | warm ms | KB | charts |\n|---|---|---|---|---|---|")
    bodies: dict[str, str] = {}
    for name, path in pages:
        status, cold, body = _timed(client, path)
        _, warm, _ = _timed(client, path)
        bodies[name] = body
        kb = len(body.encode()) / 1024
        print(f"| {name} | {status} | {cold:.0f} | {warm:.0f} | {kb:.0f} | {_charts(body)} |")
    report = bodies["report.md"]
    if args.out:
        args.out.write_text(report)
    print()
    for line in report.splitlines():
        if re.match(r"^(#+ |\*\*Recommend|Recommend|Confidence|- \*\*)", line):
            print(line[:300])
    match = re.search(r'<script type="application/json"[^>]*>(.*?)</script>', bodies["study"], re.S)
    if match:
        print(f"study page carries {len(json.loads(match.group(1)))} chart specs")


if __name__ == "__main__":
    main()
