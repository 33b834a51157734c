"""Build host (gcc) executables from generated C sources, for tests and benchmarks."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np

from firmware_gen.frontend_c import write_frontend
from model_dev.frontend import FrontendConfig

HOST_DIR = Path(__file__).parent / "host"
WARNINGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g"]


def compile_host(sources: list[Path], exe: Path, *, sanitize: bool, opt: str = "-O2") -> Path:
    """Compile C sources with gcc into ``exe`` (warnings are errors)."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise RuntimeError("no C compiler found: install gcc (make setup does this)")
    include = sorted({f"-I{s.parent}" for s in sources})
    cmd = [cc, *WARNINGS, opt, *(SANITIZE if sanitize else []), *include, *map(str, sources)]
    result = subprocess.run([*cmd, "-o", str(exe)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"gcc failed building {exe.name}:\n{result.stderr}")
    return exe


def build_frontend_cli(
    cfg: FrontendConfig, build_dir: str | Path, *, sanitize: bool = True
) -> Path:
    """Generate the C front end for ``cfg`` and build the ``frontend_cli`` harness."""
    build_dir = Path(build_dir)
    sources = write_frontend(cfg, build_dir)
    c_files = [p for p in sources if p.suffix == ".c"] + [HOST_DIR / "frontend_cli.c"]
    return compile_host(c_files, build_dir / "frontend_cli", sanitize=sanitize)


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
