"""Where the package's own files are: the Hydra configs (`conf/`), located in one place.

    from pipeline.locate import conf_dir
    conf_dir() / "sandbox" / "default.yaml"

A lowest-floor module (it imports nothing of the pipeline), so anything may use it; config
composition itself lives in `pipeline.compose`.
"""

from __future__ import annotations

from pathlib import Path


def conf_dir() -> Path:
    """The directory holding `config.yaml` and the config groups."""
    return Path(__file__).resolve().parents[1] / "conf"
