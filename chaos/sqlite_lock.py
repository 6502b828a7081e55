"""`python -m chaos.sqlite_lock PATH SECONDS`: another process holding the history database in
an exclusive transaction, as a backup tool or a stray `sqlite3` shell would: every reader and
writer of history waits, then fails with "database is locked", until it lets go."""

from __future__ import annotations

import sqlite3
import sys
import time


def main() -> None:
    path, seconds = sys.argv[1], float(sys.argv[2])
    # isolation_level=None: the transaction is ours to begin; timeout: wait for history's own
    # write to end before taking the lock.
    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    connection.execute("BEGIN EXCLUSIVE")
    print(f"locked at {time.time():.3f}", flush=True)
    time.sleep(seconds)
    connection.execute("ROLLBACK")
    connection.close()
    print(f"released at {time.time():.3f}", flush=True)


if __name__ == "__main__":
    main()
