"""Named fault-injection points for the crash tests: the process dies right there, as a kill would.

    PIPELINE_FAULT=manifest-written:eval python -m pipeline.loop ...   # dies after eval's manifest
    PIPELINE_FAULT=promote:teacher-set ...        # dies between the TEACHER write and the statuses
    PIPELINE_FAULT=train:checkpoint-saved ...     # the trainer dies right after its first COMPLETE checkpoint
    PIPELINE_FAULT=lock:temp-written ...          # a locker dies with its LOCK record written, before the link

`point(name)` does nothing unless the environment variable names this point, so production code
pays one dictionary lookup. The process ends with `os._exit`: no cleanup, no finally blocks, no
flushed buffers, the closest a test gets to `kill -9` at an exact line.
"""

from __future__ import annotations

import os
import sys

ENV = "PIPELINE_FAULT"
EXIT_CODE = 86


def point(name: str) -> None:
    if os.environ.get(ENV) == name:
        sys.stderr.write(f"fault injected at {name}\n")
        sys.stderr.flush()
        os._exit(EXIT_CODE)
