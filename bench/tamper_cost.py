"""What the tamper checks cost per HTTP result: the page fingerprint (probes.page, in the
probe) plus the judgement against the baseline (monitor.tamper, in the core).

    .venv/bin/python -m bench.tamper_cost            # pages of 2 KiB to ~250 KiB
    .venv/bin/python -m bench.tamper_cost --targets 5000 --interval 60

Pages are portal front pages built like the test corpus (tests/probes/test_page.py:
navigation, a news list of N items, a footer with a date and a token), each judged
against the baseline of the same page with its news rotated by one item (the common
case: an ordinary change). CPU time (time.process_time), best of 5 rounds of 200, so a
noisy shared machine shows its quiet moments; the "core share" columns are what one core
spends per second on it at --targets probed every --interval seconds: every page changed
since its last probe (the worst case: a token or a counter in every page), and every
page served as before, which the probe context's `PageMemo` recognises by its SHA-256
instead of fingerprinting it again.

Goal: at 5,000 targets every 60 s with ~60 KiB pages, under 10 % of one core.
"""

from __future__ import annotations

import argparse
import time

from monitor.tamper import TamperKind, judge
from probes.page import PageMemo, fingerprint
from tests.probes.test_page import NEWS, URL, portal
from tests.unit.test_tamper import http

ROUNDS = 5
REPEAT = 200


def page(items: int, shift: int = 0) -> str:
    news = [f"{NEWS[(i + shift) % len(NEWS)]} ({i})" for i in range(items)]
    return portal(news[shift:] + news[:shift])


def cost_ms(items: int) -> tuple[int, float, float, float]:
    base, changed = page(items), page(items, shift=1)
    learned = None
    for at in range(3):
        verdict = judge(TamperKind.DEFACEMENT, learned, http(base), float(at))
        assert verdict is not None
        learned = verdict.baseline
    result = http(changed)
    best_fp = best_judge = best_unchanged = float("inf")
    memo = PageMemo()
    memo.fingerprint(changed, URL)
    for _ in range(ROUNDS):
        started = time.process_time()
        for _ in range(REPEAT):
            fingerprint(changed, URL)
        best_fp = min(best_fp, (time.process_time() - started) / REPEAT)
        started = time.process_time()
        for _ in range(REPEAT):
            judge(TamperKind.DEFACEMENT, learned, result, 10.0)
        best_judge = min(best_judge, (time.process_time() - started) / REPEAT)
        started = time.process_time()
        for _ in range(REPEAT):
            memo.fingerprint(changed, URL)
        best_unchanged = min(best_unchanged, (time.process_time() - started) / REPEAT)
    return len(changed.encode()), best_fp * 1000, best_judge * 1000, best_unchanged * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=5000)
    parser.add_argument("--interval", type=float, default=60.0)
    args = parser.parse_args()
    rate = args.targets / args.interval
    print(f"{'page':>9} {'fingerprint':>12} {'judge':>8} {'unchanged':>10} "
          f"{'core share (changed / unchanged)':>33}  "
          f"({args.targets} targets every {args.interval:g} s = {rate:.0f} pages/s)")  # fmt: skip
    for items in (10, 150, 600, 2500):
        size, fp_ms, judge_ms, unchanged_ms = cost_ms(items)
        changed_share = rate * (fp_ms + judge_ms) / 1000
        unchanged_share = rate * (unchanged_ms + judge_ms) / 1000
        print(f"{size / 1024:7.0f}Ki {fp_ms:10.2f}ms {judge_ms:6.3f}ms {unchanged_ms:8.3f}ms "
              f"{changed_share:20.1%} / {unchanged_share:.1%}")  # fmt: skip


if __name__ == "__main__":
    main()
