"""``make bench``: ``python -m homelink.bench [--quick]``. Prints figures and ratios against the
floors and the targets in the issues; it is not a test and never fails on a slow machine."""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "homelink.settings")
# Benchmarks run throw-away databases with synthetic data: the development key is fine there.
os.environ.setdefault("HOMELINK_DEV", "1")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m homelink.bench")
    parser.add_argument("--quick", action="store_true", help="small sizes only (2,000 pupils)")
    parser.add_argument(
        "--pupils", type=int, action="append", help="import sizes (default 2,000 and 100,000)"
    )
    parser.add_argument(
        "--only",
        choices=["imports", "sync", "letters", "messages", "trust", "search", "load"],
        action="append",
        help="run only these benchmarks",
    )
    args = parser.parse_args()
    import django

    django.setup()
    from homelink.bench import imports, letters, load, messages, search, sync, trust

    only = set(args.only or ["imports", "sync", "letters", "messages", "trust", "search", "load"])
    if "imports" in only:
        sizes = args.pupils or ([2_000] if args.quick else [2_000, 100_000])
        imports.run(sizes)
    if "sync" in only:
        print()
        sync.run(sync.QUICK_STUDENTS if args.quick else sync.STUDENTS)
    if "letters" in only:
        print()
        letters.run()
    if "messages" in only:
        print()
        messages.run(quick=args.quick)
    if "trust" in only:
        print()
        # --quick: 10 schools of 2,000 (20,000 SMS) beside one school of 20,000.
        trust.run(quick=args.quick)
    if "search" in only:
        print()
        search.run()
    if "load" in only:
        print()
        load.run(quick=args.quick)


if __name__ == "__main__":
    main()
