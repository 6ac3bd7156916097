"""mkdocs hooks (``hooks:`` in mkdocs.yml).

The notebooks of ``docs/notebooks`` are executed by the mkdocs-jupyter plugin while the site is
built. This hook makes that run the small size CI uses (``ICHPROG_EXAMPLE_SMALL=1``, unless the
variable is already set), writes the notebooks' files into a temporary folder
(``ICHPROG_EXAMPLE_OUT``, removed after the build) instead of the working directory, and puts
this checkout's ``src`` first on the kernel's ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

_made: list[str] = []


def on_config(config: Any) -> Any:
    os.environ.setdefault("ICHPROG_EXAMPLE_SMALL", "1")
    if not os.environ.get("ICHPROG_EXAMPLE_OUT"):
        folder = tempfile.mkdtemp(prefix="ichprog_docs_notebooks_")
        _made.append(folder)
        os.environ["ICHPROG_EXAMPLE_OUT"] = folder
    src = str(Path(config.config_file_path).resolve().parent / "src")
    paths = os.environ.get("PYTHONPATH", "")
    if src not in paths.split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (src, paths) if p)
    return config


def on_post_build(config: Any) -> None:
    while _made:
        shutil.rmtree(_made.pop(), ignore_errors=True)
