"""``up``'s supervisor blocks until a part exits (real child processes, no polling timer)."""

from __future__ import annotations

import subprocess
import sys

from streamscribe.launcher import ExitWatcher


def _child(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code])


def test_the_watcher_wakes_when_a_watched_process_exits() -> None:
    watcher = ExitWatcher()
    lasting = _child("import time; time.sleep(60)")
    quick = _child("raise SystemExit(3)")
    try:
        watcher.watch("lasting", lasting)
        watcher.watch("quick", quick)
        assert watcher.next_exit(timeout_s=30) == "quick"
        assert quick.poll() == 3  # the exit code is there for the supervisor to read
        assert watcher.next_exit(timeout_s=0.2) is None  # nothing else exited
        assert lasting.poll() is None
        lasting.kill()
        assert watcher.next_exit(timeout_s=30) == "lasting"
        assert lasting.poll() == -9
    finally:
        lasting.kill()
        lasting.wait()
