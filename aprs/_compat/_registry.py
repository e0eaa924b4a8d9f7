"""A local model registry in azureml-core's cache layout, for ``Run.register_model``.

    run.register_model("m", model_path="m")  (model_path: an uploaded name, else a local path)
        ──► <output>/azureml-models/m/<next version>/<file or folder>
    a later job: --model-dir <output>/azureml-models  ──► Model.get_model_path("m")
                 (or run it from <output>: ./azureml-models/m/<version>/ is searched too)

Invariant: a version folder is claimed with an atomic ``mkdir`` before anything is copied
into it, so workers registering the same name at once get distinct versions.
"""

from __future__ import annotations

import os
import shutil

__all__ = ("CACHE_DIR", "find_cached", "store_model")

CACHE_DIR = "azureml-models"


def store_model(output_dir: str, name: str, source: str) -> tuple[int, str]:
    """Copy ``source`` (a file or folder) in as the next version of ``name``.

    Returns:
        (version, path of the stored copy).
    """
    root = os.path.join(output_dir, CACHE_DIR, name)
    os.makedirs(root, exist_ok=True)
    version = 1 + max((int(v) for v in os.listdir(root) if v.isdigit()), default=0)
    while True:
        try:
            os.mkdir(os.path.join(root, str(version)))
            break
        except FileExistsError:
            version += 1
    target = os.path.join(root, str(version), os.path.basename(source.rstrip("/")))
    if os.path.isdir(source):
        shutil.copytree(source, target)
    else:
        shutil.copyfile(source, target)
    return version, target


def find_cached(root: str, name: str, version: int | None) -> str | None:
    """``<root>/<name>/<version or highest>/<its one entry>``, as azureml-core looks.

    Raises:
        ValueError: the version folder holds more or less than one entry.
    """
    folder = os.path.join(root, name)
    if not os.path.isdir(folder):
        return None
    if version is None:
        versions = [v for v in os.listdir(folder) if v.isdigit()]
        if not versions:
            return None
        chosen = max(versions, key=int)
    else:
        chosen = str(version)
    folder = os.path.join(folder, chosen)
    if not os.path.isdir(folder):
        return None
    entries = sorted(os.listdir(folder))
    if len(entries) != 1:
        raise ValueError(
            f"Dir {folder} can contain only 1 file or folder (as in azureml-core); found "
            f"{entries}. Keep one model file or folder per version."
        )
    return os.path.join(folder, entries[0])
