"""One check for the paths of ``--json``, ``--md`` and ``--plot``: a report never replaces one of the
run's own inputs or artifacts (``prune-export -o jc --json jc/isodeploy.json`` would replace the spec,
``verify k/model.onnx --json k/model.onnx`` the ONNX), nor a FIFO, a link or a device. Run it before
any long work, so the refusal costs nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping

from isodeploy.core.errors import IsodeployError
from isodeploy.core.safe_write import check_target, writable_ancestor

PathLike = str | os.PathLike | None
SIDE_FILES = (".data", ".json")  # model.onnx.data (external weights), model.plan.json (engine metadata)
FOLDER_FILES = ("isodeploy.json", "model.safetensors", ".isodeploy-owned.json", ".isodeploy.lock")


def _real(path: PathLike) -> Path:
    return Path(os.path.realpath(os.path.expanduser(str(path))))


def _files_of(path: Path) -> list[Path]:
    return [path] + [path.with_name(path.name + side) for side in SIDE_FILES]


def _folder_names(folder: Path, extra: Iterable[str]) -> set[str]:
    """The entries of an isodeploy folder that are isodeploy's: the marker's list and the fixed names."""
    from isodeploy.core.ownership import read_owned

    return set(FOLDER_FILES) | set(extra) | (read_owned(folder) or set())


def check_location(path: PathLike, flag: str, suffixes: tuple[str, ...] = ()) -> Path | None:
    """A report path can be written at all: its suffix, not a folder, and the nearest existing folder
    above it is a writable folder (not a file). Cheap, so it also runs when the command line is parsed."""
    if path is None or str(path) == "":
        return None
    path = Path(path)
    if suffixes and path.suffix.lower() not in suffixes:
        raise IsodeployError(f"{flag} '{path}' must end in {', '.join(suffixes)}")
    if path.is_dir():
        raise IsodeployError(f"{flag} {path} is a folder; give a file path")
    existing, why = writable_ancestor(Path(os.path.abspath(path)).parent)
    if why == "file":
        raise IsodeployError(f"cannot write {flag} {path}: {existing} is a file, not a folder")
    if why == "read-only":
        raise IsodeployError(f"cannot write {flag} {path}: {existing} is not writable; choose a writable location")
    return path


def check_report_paths(reports: Mapping[str, PathLike], inputs: Iterable[PathLike] = (),
                       outputs: Iterable[PathLike] = (), folders: Iterable[tuple[PathLike, Iterable[str]]] = (),
                       suffixes: Mapping[str, tuple[str, ...]] | None = None) -> None:
    """Refuse, in one line, a report path that is one of the run's own files, or cannot be written.

    ``reports`` maps an option (``--json``) to its path (None: not given). ``inputs`` are files or
    folders the run reads (a folder MODEL protects its isodeploy entries), ``outputs`` files it
    writes, ``folders`` output folders with the entry names the run writes there; ``suffixes`` the
    endings an option allows (``--plot``: .png/.svg/.pdf).
    """
    given = {flag: Path(p) for flag, p in reports.items() if p is not None and str(p) != ""}
    protected: dict[Path, str] = {}
    owned: list[tuple[Path, set[str], str]] = []
    for what, items in (("an input of this run", inputs), ("an output of this run", outputs)):
        for item in items:
            if item is None or str(item) == "":
                continue
            real = _real(item)
            if what.startswith("an input") and not real.exists():
                continue  # a model name, not a path
            if real.is_dir():
                owned.append((real, _folder_names(real, ()), f"{what}'s own entry (in {item})"))
            else:
                for path in _files_of(real):
                    protected.setdefault(path, f"{what} ({item})")
    for folder, names in folders:
        if folder is not None:
            real = _real(folder)
            owned.append((real, _folder_names(real, names), f"isodeploy's own entry in the output folder {folder}"))
    seen: dict[Path, str] = {}
    for flag, path in given.items():
        real = _real(path)
        why = protected.get(real)
        for folder, names, label in owned:
            if why is None and real.parent != real and folder in real.parents:
                top = real.relative_to(folder).parts[0]
                why = label if top in names else None
            elif why is None and real == folder:
                why = label
        if why is None and real in seen:
            why = f"also given to {seen[real]}"
        if why is not None:
            raise IsodeployError(f"{flag} {path} is {why}; isodeploy never replaces it with a report: give another path")
        seen[real] = flag
        check_target(path, f"{flag} {path}")
        check_location(path, flag, (suffixes or {}).get(flag, ()))
