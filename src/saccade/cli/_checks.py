"""Up-front checks of the user's flags (paths, device, settings files), before any heavy work.

Each check raises ValueError naming the flag, what it expected and what it found; `main` prints it as one
line and exits 2. Output folders are created here, parents included, so a run never fails at its end.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

_DEVICE_FORMS = "cpu, cuda, cuda:N (N a GPU index), mps or xpu"


def existing_file(path: str, *, flag: str) -> Path:
    """`path` as a Path if it is a file, else ValueError naming `flag`."""
    file = Path(path)
    if not file.exists():
        raise ValueError(f"{flag} {path}: no such file")
    if not file.is_file():
        raise ValueError(f"{flag} {path}: is a folder, expected a file")
    return file


def checkpoint_folder(path: str, *, flag: str) -> Path:
    """`path` as a Path if it is a folder holding config.json and model.safetensors, else ValueError."""
    from saccade.model.checkpoint import CONFIG_FILE, WEIGHTS_FILE

    folder = Path(path)
    expected = f"a checkpoint folder holds {CONFIG_FILE} and {WEIGHTS_FILE}"
    if not folder.exists():
        raise ValueError(f"{flag} {path}: no such checkpoint folder ({expected})")
    if not folder.is_dir():
        raise ValueError(f"{flag} {path}: is a file, expected a checkpoint folder ({expected})")
    missing = [name for name in (CONFIG_FILE, WEIGHTS_FILE) if not (folder / name).is_file()]
    if missing:
        raise ValueError(f"{flag} {path}: the folder lacks {' and '.join(missing)} ({expected})")
    return folder


def model_spec(spec: str, *, flag: str = "--model") -> str:
    """`spec` if it names a model saccade.load can build (a checkpoint folder, a Hub id, a mirror name, a preset,
    a .json config), else ValueError naming `flag`."""
    from saccade.model.config import PRESETS

    if spec in PRESETS or (spec.endswith(".json") and Path(spec).is_file()):
        return spec
    checkpoint_spec(
        spec, flag=flag, unknown=f"no such checkpoint folder, and not a preset ({', '.join(sorted(PRESETS))})"
    )
    return spec


def probe_spec(spec: str, *, flag: str) -> str:
    """`spec` if it names a probe: a saccade probe file (.safetensors), or a released probe folder, Hub id or mirror
    name holding config.json and model.safetensors (fetched or found in the cache here); else ValueError."""
    if spec.endswith(".safetensors") or Path(spec).is_file():
        existing_file(spec, flag=flag)
        return spec
    checkpoint_spec(spec, flag=flag, unknown="no such probe file or released probe folder")
    return spec


def checkpoint_spec(spec: str, *, flag: str, unknown: str = "no such checkpoint folder") -> Path:
    """The checkpoint folder `spec` names: a local folder, or a Hub id or mirror name (saccade.hub; fetched or found
    in the cache here), checked by checkpoint_folder; else ValueError naming `flag` and saying `unknown`."""
    from saccade.hub import ModelNotFoundError, hub_id, resolve_folder
    from saccade.loading import CHECKPOINT_FILES

    if Path(spec).exists():
        return checkpoint_folder(spec, flag=flag)
    if not (hub_id(spec) or "/" not in spec):
        raise ValueError(f"{flag} {spec}: {unknown}")
    try:
        folder = resolve_folder(spec, allow_patterns=CHECKPOINT_FILES)
    except ModelNotFoundError as error:
        raise ValueError(f"{flag} {spec}: {unknown}; {error}") from None
    return checkpoint_folder(str(folder), flag=flag)


def model_folder(spec: str | None) -> Path | None:
    """The checkpoint folder a --model spec resolves to (local, Hub id, mirror name), for reading its recorded
    settings before the flags are parsed; None for a preset, a .json config or a spec naming nothing (the
    command's checks name that problem)."""
    from saccade.hub import ModelNotFoundError, resolve_folder
    from saccade.loading import CHECKPOINT_FILES
    from saccade.model.config import PRESETS

    if spec is None or spec in PRESETS or spec.endswith(".json"):
        return None
    try:
        folder = resolve_folder(spec, allow_patterns=CHECKPOINT_FILES)
    except (ModelNotFoundError, ValueError):
        return None
    return folder if folder.is_dir() else None


def output_folder(path: str, *, flag: str) -> Path:
    """Create the folder `path` (parents included) and check that it takes files, else ValueError naming `flag`."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{flag} {path}: is an existing file, expected a folder to write into")
    _make_writable_folder(folder, flag=flag, shown=path)
    return folder


def output_file(path: str, *, flag: str) -> Path:
    """Create the parent folder of the file `path` and check that it takes files, else ValueError naming `flag`."""
    file = Path(path)
    if file.is_dir():
        raise ValueError(f"{flag} {path}: is a folder, expected a file name to write")
    _make_writable_folder(file.parent, flag=flag, shown=path)
    return file


def _make_writable_folder(folder: Path, *, flag: str, shown: str) -> None:
    existing = next(path for path in (folder, *folder.parents) if path.exists())
    if not existing.is_dir():
        raise ValueError(f"{flag} {shown}: {existing} is a file, so no folder can be made in it")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):  # os.access says yes to root even on read-only mounts
            pass
    except OSError as error:
        raise ValueError(f"{flag} {shown}: cannot write into {folder} ({error.strerror})") from error


def checked_device(spec: str | None, *, flag: str = "--device") -> str | None:
    """`spec` unchanged if torch can run on it here (None: the command's default), else ValueError naming `flag`."""
    if spec is None:
        return None
    import torch

    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ValueError(f"{flag} {spec}: not a device; expected {_DEVICE_FORMS}") from None
    if device.type == "cpu":
        return spec
    if device.type == "cuda":
        _check_cuda(device, spec=spec, flag=flag)
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"{flag} {spec}: MPS (Apple GPU) is not available on this machine")
    elif device.type == "xpu":
        if not torch.xpu.is_available():
            raise ValueError(f"{flag} {spec}: XPU (Intel GPU) is not available on this machine")
    else:
        raise ValueError(f"{flag} {spec}: saccade does not run on {device.type!r} devices; expected {_DEVICE_FORMS}")
    return spec


def _check_cuda(device: torch.device, *, spec: str, flag: str) -> None:
    import torch

    if not torch.cuda.is_available():
        built = torch.version.cuda or torch.version.hip  # ROCm builds run "cuda" devices too
        reason = "no GPU found" if built else f"torch {torch.__version__} is built without CUDA"
        raise ValueError(f"{flag} {spec}: CUDA is not available on this machine ({reason}); use --device cpu")
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise ValueError(f"{flag} {spec}: this machine has {count} GPU(s), numbered 0 to {count - 1}")
