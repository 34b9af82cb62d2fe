"""Where the package's own files are: the Hydra configs (`conf/`), located in one place.

    from pipeline.infra.locate import conf_dir
    conf_dir() / "sandbox" / "default.yaml"

In a checkout (and an editable install) the configs are the top-level `conf/`; an installed wheel
carries a copy inside the package, `pipeline/conf/` (setup.py puts it there), so `pip install .`
composes the same files outside the checkout. A lowest-floor module (it imports nothing of the
pipeline), so anything may use it; composing configs is `pipeline.config.compose`.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # pipeline/


def conf_dir() -> Path:
    """The directory holding `config.yaml` and the config groups."""
    for candidate in (PACKAGE / "conf", PACKAGE.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"no Hydra configs: neither {PACKAGE / 'conf'} nor {PACKAGE.parent / 'conf'} holds config.yaml")
