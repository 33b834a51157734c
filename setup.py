"""The C extension of the package (everything else is in pyproject.toml): the device's front end,
``model_dev._aed_frontend`` (see model_dev/frontend_native.py)."""

import importlib.util
from pathlib import Path

from setuptools import Extension, setup

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location(
    "frontend_native", HERE / "model_dev" / "frontend_native.py"
)
native = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(native)
root = Path("firmware_gen")  # setuptools wants paths relative to this folder

setup(
    ext_modules=[
        Extension(
            "model_dev._aed_frontend",
            sources=[str(root / s) for s in native.SOURCES],
            include_dirs=[str(root / d) for d in native.INCLUDE_DIRS],
            depends=[str(root / h) for h in native.HEADERS],
            define_macros=[("AED_PYEXT_SOURCES_SHA256", f'"{native.sources_sha256()}"')],
            extra_compile_args=["-std=c99", "-O3", "-funroll-loops"],
        )
    ]
)
