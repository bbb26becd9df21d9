import os
import subprocess
import sys
from pathlib import Path

from streamscribe.running import RunningUp, announce, running


def test_a_live_up_is_found_and_a_dead_ones_file_removed(tmp_path: Path) -> None:
    me = RunningUp(os.getpid(), "ws://127.0.0.1:8080/v1/stream", "redis://127.0.0.1:1/0")
    announce(8080, me, directory=tmp_path)
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead = RunningUp(int(gone.stdout), "ws://127.0.0.1:8081/v1/stream", "redis://127.0.0.1:2/0")
    announce(8081, dead, directory=tmp_path)
    (tmp_path / "up-8082.json").write_text("not json")
    assert running(directory=tmp_path) == [me]
    assert not (tmp_path / "up-8081.json").exists()
