"""``python -m homelink.bench.rss OUT CMD...``: run CMD and write its peak RSS (KiB) to OUT.

Linux keeps a process's peak RSS across fork and exec, so a child of the (large) benchmark
process would report the benchmark's own memory; a small launcher in between does not."""

from __future__ import annotations

import os
import sys


def main() -> None:
    out, args = sys.argv[1], sys.argv[2:]
    pid = os.fork()
    if pid == 0:
        os.execv(args[0], args)  # noqa: S606
    _, status, usage = os.wait4(pid, 0)
    with open(out, "w") as fh:
        fh.write(str(usage.ru_maxrss))
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
