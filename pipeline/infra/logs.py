"""How loud a run is: the pipeline's own lines at INFO, libraries' (vLLM, transformers, datasets, the Hub,
torch, ...) at WARNING unless `log.level=debug`; progress bars only when stderr is a terminal.

    python -m pipeline.loop log.level=debug     # every library's INFO and DEBUG lines too

`configure` runs once at an entry point, before any engine or training worker starts. It sets the
loggers of this process and the environment its children inherit (vLLM's EngineCore reads
VLLM_LOGGING_LEVEL, the training worker TRANSFORMERS_VERBOSITY, every tqdm TQDM_DISABLE at import),
so a log file gets no vLLM INFO chatter and no progress-bar control characters. A variable the user
set already is left as it is.
"""

from __future__ import annotations

import logging
import os
import sys

LIBRARIES = ("vllm", "transformers", "datasets", "huggingface_hub", "torch", "accelerate", "trl", "peft",
             "urllib3", "httpx", "filelock", "numexpr", "matplotlib", "PIL", "asyncio", "wandb", "mlflow", "alembic")


def bars_wanted() -> bool:
    """Progress bars only on a terminal: in a file their carriage returns run into the log lines."""
    return sys.stderr.isatty()


def configure(level: str = "info") -> None:
    debug = level == "debug"
    lib = logging.DEBUG if debug else logging.WARNING
    logging.getLogger().setLevel(logging.DEBUG if debug else logging.INFO)
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(lib)
    os.environ.setdefault("VLLM_LOGGING_LEVEL", logging.getLevelName(lib))
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "debug" if debug else "warning")
    if not bars_wanted():
        for var in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS"):
            os.environ.setdefault(var, "1")
        # libraries this process imported already read their switches at import
        for module, switch in (("huggingface_hub.utils", "disable_progress_bars"), ("datasets", "disable_progress_bars"),
                               ("transformers.utils.logging", "disable_progress_bar")):
            if module in sys.modules:
                getattr(sys.modules[module], switch)()
