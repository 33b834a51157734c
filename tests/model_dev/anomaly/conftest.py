"""Shared fixtures: the tiny synthetic machine corpus, generated once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    from model_dev.anomaly.corpus import generate

    return generate(tmp_path_factory.mktemp("machines") / "tiny", "tiny", seed=0, progress=False)


@pytest.fixture(scope="session")
def tiny_prepared(tiny_corpus, tmp_path_factory):
    """``(MachineSet, FeatureSet)`` of the tiny corpus."""
    from model_dev.anomaly.pipeline import prepare

    return prepare("dcase", tiny_corpus, tmp_path_factory.mktemp("cache"), progress=False)
