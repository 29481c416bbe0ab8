"""Fixtures of the compression tests: tiny-bert (random 2-layer BERT) and a few examples."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def _tiny_bert_session():
    from paretoedge.models import load_model, load_tokenizer

    return load_model("tiny-bert", seed=0), load_tokenizer("tiny-bert")


@pytest.fixture
def tiny_bert(_tiny_bert_session):
    """A fresh copy of tiny-bert per test (tests modify models in place)."""
    import copy

    return copy.deepcopy(_tiny_bert_session[0]).eval()


@pytest.fixture(scope="session")
def tokenizer(_tiny_bert_session):
    return _tiny_bert_session[1]


@pytest.fixture(scope="session")
def small_task():
    from paretoedge.tasks import load_task

    return load_task("sentiment", limit=64)


@pytest.fixture(scope="session")
def batches(tokenizer, small_task):
    from paretoedge.training import make_batches

    return make_batches(tokenizer, small_task.train[:32], batch_size=16, max_length=32)
