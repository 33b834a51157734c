"""Build host (gcc) executables from a package's C sources and the harnesses in
``csrc/harness/``, for tests and benchmarks."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from firmware_gen.frontend_c import write_frontend
from firmware_gen.render import CSRC, INCLUDE_DIR
from model_dev.frontend import FrontendConfig

#: Host harnesses shipped with the package data: frontend_cli.c, model_cli.c, proto_fuzz.c.
HARNESS_DIR = CSRC / "harness"
WARNINGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g"]


def package_includes(out_dir: str | Path) -> list[Path]:
    """The include folders of a package's library (``aed/include``)."""
    return [Path(out_dir) / INCLUDE_DIR]


def compile_host(
    sources: Sequence[Path],
    exe: Path,
    *,
    sanitize: bool,
    include: Sequence[Path] = (),
    opt: str = "-O2",
) -> Path:
    """Compile C sources with gcc into ``exe`` (warnings are errors).

    ``include`` adds header folders to those of the sources themselves.
    """
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise RuntimeError("no C compiler found: install gcc (make setup does this)")
    dirs = sorted({str(d) for d in include} | {str(Path(s).parent) for s in sources})
    cmd = [cc, *WARNINGS, opt, *(SANITIZE if sanitize else []), *(f"-I{d}" for d in dirs)]
    result = subprocess.run(
        [*cmd, *map(str, sources), "-o", str(exe)], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"gcc failed building {exe.name}:\n{result.stderr}")
    return exe


def build_frontend_cli(
    cfg: FrontendConfig, build_dir: str | Path, *, sanitize: bool = True
) -> Path:
    """Generate the C front end for ``cfg`` and build the ``frontend_cli`` harness."""
    build_dir = Path(build_dir)
    sources = write_frontend(cfg, build_dir)
    c_files = [p for p in sources if p.suffix == ".c"] + [HARNESS_DIR / "frontend_cli.c"]
    return compile_host(
        c_files, build_dir / "frontend_cli", sanitize=sanitize, include=package_includes(build_dir)
    )


def encode_clips(clips: list[np.ndarray]) -> bytes:
    """Serialise int16 clips in the harness's stdin format."""
    parts = []
    for clip in clips:
        clip = np.ascontiguousarray(clip, dtype="<i2")
        parts += [np.uint32(len(clip)).astype("<u4").tobytes(), clip.tobytes()]
    return b"".join(parts)


def run_frontend_cli(
    exe: Path,
    clips: list[np.ndarray],
    cfg: FrontendConfig,
    mode: str = "clip",
    wrapper: list[str] | None = None,
) -> list[np.ndarray]:
    """Run the harness on ``clips``; returns int8 features [frames, n_mels] per clip."""
    result = subprocess.run(
        [*(wrapper or []), str(exe), mode], input=encode_clips(clips), capture_output=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"{exe.name} failed ({result.returncode}): {result.stderr.decode()}")
    out = np.frombuffer(result.stdout, dtype=np.int8)
    features, pos = [], 0
    for clip in clips:
        size = cfg.n_frames(len(clip)) * cfg.n_mels
        features.append(out[pos : pos + size].reshape(-1, cfg.n_mels))
        pos += size
    if pos != len(out):
        raise RuntimeError(f"{exe.name}: {len(out) - pos} unexpected trailing bytes")
    return features
