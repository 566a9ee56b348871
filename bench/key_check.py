"""How long the registry's API-key check takes with 10, 100 and 1000 stored keys: `python -m bench.key_check`.

A key check hashes the candidate once and compares it, in constant time, with every stored key; the unit tests
prove that structure (one sha256, no file read, one comparison per key), this measures what it costs on this
machine. The figure is the best of a few rounds, since a shared machine only ever makes a round slower.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from models_service.keys import KeyStore, new_secret

logger = logging.getLogger("bench.key_check")


def microseconds_per_check(keys: int, checks: int, rounds: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        store = KeyStore(Path(folder))
        store._records = [store._new_record(f"k{i}", new_secret()) for i in range(keys - 1)]
        last = new_secret()
        store._records.append(store._new_record("last", last))  # the last one, so that every key is compared
        best = float("inf")
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(checks):
                store.verify(last)
            best = min(best, (time.perf_counter() - start) / checks)
    return best * 1e6


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--checks", type=int, default=2000, help="checks per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    for keys in args.keys:
        logger.info("%6d keys: %8.1f µs per check", keys, microseconds_per_check(keys, args.checks, args.rounds))


if __name__ == "__main__":
    main()
