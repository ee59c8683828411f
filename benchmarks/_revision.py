"""An older commit's code timed beside today's: the ``--against REV`` of the benchmarks.

:func:`unpack_commit` unpacks ``git archive REV`` of this repository into a folder;
:class:`RevisionProcess` runs a script there in its own Python process (the older
package first on ``PYTHONPATH``), reads the one JSON line the script prints first (what
it computed, for the caller to compare with its own result), then times one run per
request: the caller alternates its own runs with :meth:`RevisionProcess.run`, so both
see the same phase of a shared machine.

The script's protocol: print one JSON line, then for each line read from stdin run once
and print the seconds it took.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def unpack_commit(rev: str, folder: str) -> str:
    """``git archive rev`` of this repository unpacked under ``folder``; returns its root."""
    root = os.path.join(folder, f"rev-{rev}")
    git = ["git", "-C", str(REPO), "archive", "--format=tar", rev]  # the whole tree
    archive = subprocess.run(git, check=True, capture_output=True).stdout
    tar_path = root + ".tar"
    Path(tar_path).write_bytes(archive)
    with tarfile.open(tar_path) as tar:
        tar.extractall(root, filter="data")
    return root


class RevisionProcess:
    """``script`` run with ``args`` by the code unpacked at ``root`` (see the module).

    Attributes
    ----------
    first : object
        The JSON value of the script's first line.
    """

    def __init__(self, root: str, script: str, args: list[str]) -> None:
        env = dict(os.environ, PYTHONPATH=root)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script, *args],
            cwd=root,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise RuntimeError(
                f"the code at {root} stopped before its first result "
                f"(exit status {self.proc.returncode}; its error is printed above)"
            )
        self.first = json.loads(line)

    def run(self) -> float:
        """Seconds of one run in the older code's process."""
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise RuntimeError(
                f"the older code's process stopped (exit status {self.proc.returncode}; "
                "its error is printed above)"
            )
        return float(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()
