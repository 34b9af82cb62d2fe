"""Packaging hook: ship `conf/` (the Hydra configs) inside the package as `pipeline/conf/`.

The configs stay at the top of the checkout, where users edit them; a built wheel (`pip install .`)
carries a copy inside the package, so an installed pipeline composes the same files outside the
checkout. `pipeline.infra.locate.conf_dir()` finds whichever is there. Everything else is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithConf(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib) / "pipeline" / "conf"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(Path(__file__).parent / "conf", target)


setup(cmdclass={"build_py": BuildPyWithConf})
