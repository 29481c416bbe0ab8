"""Export of one stored candidate, ready for its device.

A candidate is rebuilt from what the database holds: the study's validated config (model,
task and its data limits, teacher epochs, seed, sequence length) and the candidate's flat
compression spec. The rebuild is the search's own build
(:func:`paretoedge.search.build_candidate`: the cached fine-tuned teacher,
``torch.manual_seed(seed)``, :func:`paretoedge.compression.compress` with the same task
subsets), so it is the same model; the validation accuracy is measured
again and reported next to the stored one, which is how a reader sees that it is.

Written to ``out``:

* ``hf/``: the compressed model (``save_pretrained`` files + structure, see
  :func:`paretoedge.compression.save_compressed`) and its tokenizer;
* ``model.onnx``: static-shape float ONNX with the ``paretoedge.*`` metadata (what the
  hardware model predicted on), and ``model.int8.onnx`` (int8 QDQ) when the candidate
  quantises weights to 8 bits;
* ``tvm/``: the TVM build of ``model.onnx`` for the device's target: ``model.so`` when the
  target is this machine, otherwise ``model.tar`` (object files to link on the device, as
  no cross linker is needed for that), plus ``params.npz`` (weights in call order) and
  ``inputs.json``;
* ``model.pte`` / ``model.int8.pte``: XNNPACK-delegated ExecuTorch programs (fp32, and
  int8 when the candidate quantises weights to 8 bits) for ARM CPUs and phones, when the
  ``executorch`` extra is installed (see :data:`DEVICE_FORMATS`);
* ``README.md``: a model card (config, metrics, device, predicted latency, how to load).

Every exported file is run in its own runtime on the test split and compared with the
PyTorch candidate (:func:`paretoedge.exporters.check_runtime`): float files must agree on
>= 99 % of the predictions, int8 files must stay within one accuracy point. The checks are
in :attr:`ExportResult.runtime_checks` and the card.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paretoedge.errors import ConfigError, NotFoundError, ParetoEdgeError

if TYPE_CHECKING:
    from paretoedge.exporters import RuntimeCheck
    from paretoedge.storage import CandidateRecord, Storage, StudyRecord

_log = logging.getLogger(__name__)

#: format -> the import its exporter and runtime need (None: a core dependency)
FORMATS: dict[str, str | None] = {"onnx": None, "executorch": "executorch"}
#: device kind -> the formats that class of device deploys (written when installed)
DEVICE_FORMATS: dict[str, tuple[str, ...]] = {
    "cpu": ("onnx", "executorch"),
    "gpu": ("onnx",),
    "mcu": ("onnx",),
}


def resolve_formats(requested: Sequence[str] | None, device_kind: str) -> tuple[str, ...]:
    """The formats to write: ``requested``, or the device class's installed ones.

    ONNX is always written (the hardware model predicts on it). A format asked for
    explicitly must be installed; one only implied by the device class is skipped with a
    log line when its extra is missing.

    Raises:
        ConfigError: An unknown format.
        MissingExtraError: A requested format's extra is not installed.
    """
    from paretoedge.exporters import available, require

    if requested is None:
        wanted = DEVICE_FORMATS.get(device_kind, ("onnx",))
        chosen = []
        for f in wanted:
            package = FORMATS[f]
            if package is not None and not available(package):
                _log.info("skipping the %s export: install paretoedge[%s] for it", f, f)
                continue
            chosen.append(f)
        return tuple(chosen)
    chosen = ["onnx"]
    for f in requested:
        if f not in FORMATS:
            raise ConfigError("format", f, sorted(FORMATS))
        package = FORMATS[f]
        if package is not None:
            require(package)
        if f not in chosen:
            chosen.append(f)
    return tuple(chosen)


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_candidate` wrote and measured.

    Attributes:
        files: Artifact kind -> path (``hf`` and ``tvm`` are directories).
        stored_accuracy / reproduced_accuracy: Validation accuracy in the database and
            of the rebuilt model.
        onnx_test_accuracy: Test-split accuracy of each ONNX file (file name -> accuracy).
        predicted: The hardware model's prediction on ``model.onnx`` (``Prediction.to_dict``).
        tvm_library: The compiled library; ``tvm_linked`` says if it is a loadable shared
            library on this machine (``.so``) or object files for the device (``.tar``).
    """

    study: str
    trial: int
    device: str
    out: Path
    files: Mapping[str, Path]
    stored_accuracy: float | None
    reproduced_accuracy: float
    stored_test_accuracy: float | None
    onnx_test_accuracy: Mapping[str, float]
    predicted: Mapping[str, Any]
    tvm_library: Path
    tvm_linked: bool
    spec: Mapping[str, Any] = field(default_factory=dict)
    runtime_checks: Sequence[RuntimeCheck] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "trial": self.trial,
            "device": self.device,
            "out": str(self.out),
            "files": {k: str(v) for k, v in self.files.items()},
            "stored_accuracy": self.stored_accuracy,
            "reproduced_accuracy": self.reproduced_accuracy,
            "stored_test_accuracy": self.stored_test_accuracy,
            "onnx_test_accuracy": dict(self.onnx_test_accuracy),
            "predicted": dict(self.predicted),
            "tvm_library": str(self.tvm_library),
            "tvm_linked": self.tvm_linked,
            "spec": dict(self.spec),
            "runtime_checks": [c.to_dict() for c in self.runtime_checks],
        }


def _host_target(target: Mapping[str, Any], host: Mapping[str, Any] | None) -> bool:
    """Whether code for ``target`` runs on this machine (x86 LLVM without a foreign triple)."""
    if host is not None or target.get("kind") != "llvm":
        return False
    triple = str(target.get("mtriple", ""))
    return not triple or triple.startswith(platform.machine())


def _sha256(path: Path) -> tuple[str, int]:
    """sha256 and byte count of a file, or of a directory's files (sorted by name)."""
    digest = hashlib.sha256()
    total = 0
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if path.is_dir():
            digest.update(str(f.relative_to(path)).encode() + b"\0")
        data = f.read_bytes()
        digest.update(data)
        total += len(data)
    return digest.hexdigest(), total


def build_tvm(onnx_path: Path, device: str, out_dir: Path) -> tuple[Path, bool]:
    """Compile ``onnx_path`` with TVM for ``device``'s target into ``out_dir``.

    Uses the hardware side's lowering (:func:`paretoedge.hardware_profiles.lower`, the same
    build the latency model reads). Returns the library path and whether it is a shared
    library loadable here.

    Raises:
        LoweringError: TVM cannot import or build the model for that target.
    """
    import numpy as np

    from paretoedge.hardware_profiles import load_profile, lower, prepare
    from paretoedge.hardware_profiles._lower import import_relax

    profile = load_profile(device)
    prepared = prepare(onnx_path)
    _, executable = lower(prepared, profile.target, profile.target_host, keep_executable=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    linked = _host_target(profile.target, profile.target_host)
    lib = out_dir / ("model.so" if linked else "model.tar")
    executable.export_library(str(lib))
    _, params = import_relax(prepared)
    weights = {f"p{i:04d}": p.numpy() for i, p in enumerate(params["main"])}
    np.savez(out_dir / "params.npz", **weights)
    (out_dir / "inputs.json").write_text(
        json.dumps(
            {
                "inputs": [
                    {"name": n, "shape": list(s), "dtype": d} for n, s, d in prepared.inputs
                ],
                "params": "params.npz: p0000, p0001, ... passed after the inputs, in order",
                "target": dict(profile.target),
                "target_host": profile.target_host,
            },
            indent=2,
        )
    )
    return lib, linked


def load_tvm_library(lib_dir: Path) -> Any:
    """Load an exported host ``model.so`` into a callable ``f(**inputs) -> logits``.

    Raises:
        NotFoundError: ``lib_dir`` has no ``model.so`` (a library for another device).
    """
    import numpy as np
    import tvm
    from tvm import relax

    lib = lib_dir / "model.so"
    if not lib.is_file():
        raise NotFoundError(f"{lib} not found (libraries for other devices are model.tar)")
    meta = json.loads((lib_dir / "inputs.json").read_text())
    dev = tvm.cpu()
    vm = relax.VirtualMachine(tvm.runtime.load_module(str(lib)), dev)
    with np.load(lib_dir / "params.npz") as data:
        params = [tvm.runtime.tensor(data[k], dev) for k in sorted(data.files)]
    names = [i["name"] for i in meta["inputs"]]

    def run(**inputs: Any) -> Any:
        args = [tvm.runtime.tensor(np.asarray(inputs[n]), dev) for n in names]
        result = vm["main"](*args, *params)
        return np.asarray(result.numpy() if hasattr(result, "numpy") else result[0].numpy())

    return run


def _check(study: StudyRecord, cand: CandidateRecord, device: str) -> None:
    if device not in study.devices:
        raise ConfigError("device", device, study.devices)
    if cand.state != "complete":
        raise ConfigError("trial", cand.trial_number, f"a complete trial (trial is {cand.state})")


@dataclass(frozen=True)
class RebuiltCandidate:
    """A stored candidate rebuilt by the search pipeline's steps (see the module doc).

    Attributes:
        model / tokenizer: The compressed model (eval mode) and the teacher's tokenizer.
        config: The study's validated config; ``task`` is its task with the data limits.
        accuracy: Validation accuracy of the rebuilt model (``None`` when not measured).
    """

    study: StudyRecord
    candidate: CandidateRecord
    config: Any
    task: Any
    spec: Any
    model: Any
    tokenizer: Any
    accuracy: float | None


def rebuild_candidate(
    storage: Storage,
    *,
    study: str,
    trial: int,
    device: str | None = None,
    progress: bool = False,
    evaluate_accuracy: bool = True,
) -> RebuiltCandidate:
    """Rebuild trial ``trial`` of ``study`` from what the database holds.

    The one place that turns a stored candidate back into a model: ``paretoedge export``
    and ``paretoedge verify`` both call it.

    Raises:
        NotFoundError: No such study or trial.
        ConfigError: ``device`` is given and not a device of the study, or the trial is
            not complete.
    """
    from paretoedge import storage as st
    from paretoedge.search import build_candidate, parse_config
    from paretoedge.training import evaluate

    srec = st.get_study(storage, name=study)
    cand = st.get_candidate(storage, study=study, trial_number=trial)
    if device is not None:
        _check(srec, cand, device)
    elif cand.state != "complete":
        raise ConfigError("trial", trial, f"a complete trial (trial is {cand.state})")
    cfg = parse_config(srec.config, check_names=False)
    spec = cand.spec
    built = build_candidate(cfg, spec, progress=progress)
    model, tokenizer, task = built.model, built.tokenizer, built.task
    accuracy = None
    if evaluate_accuracy:
        accuracy = float(evaluate(model, tokenizer, task.validation, max_length=cfg.seq_len))
        if cand.accuracy is not None and abs(accuracy - cand.accuracy) > 1e-6:
            _log.warning(
                "rebuilt trial %d has validation accuracy %.4f, stored %.4f",
                trial,
                accuracy,
                cand.accuracy,
            )
    return RebuiltCandidate(srec, cand, cfg, task, spec, model, tokenizer, accuracy)


def export_onnx_files(
    model: Any, out: Path, *, seq_len: int, spec: Any, tokenizer: Any, task: Any
) -> dict[str, Path]:
    """Write ``model.onnx`` (float, with the ``paretoedge.*`` metadata the hardware model
    reads) and, for a candidate with 8-bit layers, ``model.int8.onnx`` (static int8 QDQ,
    calibrated on the first 64 training examples) into ``out``.

    Returns:
        ``{"onnx": path}`` plus ``"onnx_int8"`` when written.
    """
    from paretoedge.compression import export_onnx, model_stats
    from paretoedge.training import make_batches

    out.mkdir(parents=True, exist_ok=True)
    files = {"onnx": export_onnx(model, out / "model.onnx", seq_len=seq_len, spec=spec)}
    if 8 in model_stats(model).layer_bits.values():
        calibration = make_batches(tokenizer, task.train[:64], batch_size=16, max_length=seq_len)
        files["onnx_int8"] = export_onnx(
            model,
            out / "model.int8.onnx",
            seq_len=seq_len,
            int8_qdq=True,
            calibration=calibration,
            spec=spec,
        )
    return files


def export_candidate(
    storage: Storage,
    *,
    study: str,
    trial: int,
    device: str,
    out: Path,
    progress: bool = False,
    record: bool = True,
    formats: Sequence[str] | None = None,
) -> ExportResult:
    """Rebuild trial ``trial`` of ``study`` and write it for ``device`` (see module doc).

    Args:
        record: Store the written files as artifacts of the candidate.
        formats: Formats to write besides ONNX (see :func:`resolve_formats`); default:
            those the device's class deploys, where installed.

    Raises:
        NotFoundError: No such study or trial.
        ConfigError: ``device`` is not a device of the study, the trial is not complete,
            or an unknown format.
        MissingExtraError: A requested format's extra is not installed.
        LoweringError: TVM cannot build the model for the device's target.
    """
    from paretoedge import storage as st
    from paretoedge.compression import save_compressed
    from paretoedge.exporters import (
        check_runtime,
        example_feeds,
        executorch_runner,
        export_executorch,
        onnx_runner,
        torch_logits,
    )
    from paretoedge.hardware_profiles import load_profile, predict
    from paretoedge.search._evaluator import onnx_accuracy
    from paretoedge.training import make_batches

    srec = st.get_study(storage, name=study)
    if device not in srec.devices:  # before the device's formats, which need its profile
        raise ConfigError("device", device, srec.devices)
    chosen = resolve_formats(formats, load_profile(device).kind)
    rebuilt = rebuild_candidate(storage, study=study, trial=trial, device=device, progress=progress)
    srec, cand, cfg = rebuilt.study, rebuilt.candidate, rebuilt.config
    model, tokenizer, spec, task = rebuilt.model, rebuilt.tokenizer, rebuilt.spec, rebuilt.task
    accuracy = rebuilt.accuracy
    assert accuracy is not None

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    save_compressed(model, out / "hf", tokenizer=tokenizer, spec=spec)
    files["hf"] = out / "hf"
    files.update(
        export_onnx_files(
            model, out, seq_len=cfg.seq_len, spec=spec, tokenizer=tokenizer, task=task
        )
    )
    onnx_path = files["onnx"]
    onnx_files = [files[k] for k in ("onnx", "onnx_int8") if k in files]
    quantised = "onnx_int8" in files
    calibration = make_batches(tokenizer, task.train[:64], batch_size=16, max_length=cfg.seq_len)
    test_acc = {
        p.name: float(onnx_accuracy(p, tokenizer, task.test, cfg.seq_len)) for p in onnx_files
    }
    feeds = example_feeds(tokenizer, task.test, cfg.seq_len)
    labels = [e.label for e in task.test]
    reference = torch_logits(model, feeds)
    checks = [
        check_runtime(
            file=p.name,
            runtime="onnxruntime",
            int8=p is not onnx_path,
            run=onnx_runner(p),
            feeds=feeds,
            labels=labels,
            reference=reference,
        )
        for p in onnx_files
    ]
    if "executorch" in chosen:
        for is_int8 in (False, True) if quantised else (False,):
            name = "model.int8.pte" if is_int8 else "model.pte"
            pte = export_executorch(
                model, out / name, seq_len=cfg.seq_len, int8=is_int8, calibration=calibration
            )
            files["executorch_int8" if is_int8 else "executorch"] = pte
            run = executorch_runner(pte)
            checks.append(
                check_runtime(
                    file=name,
                    runtime="executorch",
                    int8=is_int8,
                    run=run,
                    feeds=feeds,
                    labels=labels,
                    reference=reference,
                )
            )
    for c in checks:
        if not c.passed:
            _log.warning(
                "%s in %s fails its check (%s): agreement %.4f, accuracy %.4f vs PyTorch %.4f",
                c.file,
                c.runtime,
                c.criterion,
                c.agreement,
                c.accuracy,
                c.reference_accuracy,
            )
    prediction = predict(onnx_path, device).to_dict(kernels=False)
    exit_section = ""
    if spec.exit is not None:
        from paretoedge.search._exits import exit_card_section, export_exit_files

        paths, expected, outcome = export_exit_files(
            model, tokenizer, task.validation, onnx_path, device, seq_len=cfg.seq_len
        )
        files.update({f"onnx_exit{n}": p for n, p in paths.items()})
        prediction["latency_ms"], prediction["energy_mj"] = expected.latency_ms, expected.energy_mj
        exit_section = exit_card_section(paths, outcome, expected)
    stored = cand.metrics_for(device)
    if stored is not None and not math.isclose(
        stored.latency_ms, prediction["latency_ms"], rel_tol=0.01
    ):
        _log.warning(
            "the hardware model now predicts %.3f ms for trial %d on %s; the study stored "
            "%.3f ms (the device profile or cost model changed since the search)",
            prediction["latency_ms"],
            trial,
            device,
            stored.latency_ms,
        )
    lib, linked = build_tvm(onnx_path, device, out / "tvm")
    files["tvm"] = out / "tvm"

    result = ExportResult(
        study=study,
        trial=trial,
        device=device,
        out=out,
        files=files,
        stored_accuracy=cand.accuracy,
        reproduced_accuracy=accuracy,
        stored_test_accuracy=cand.test_accuracy,
        onnx_test_accuracy=test_acc,
        predicted=prediction,
        tvm_library=lib,
        tvm_linked=linked,
        spec=cand.flat,
        runtime_checks=tuple(checks),
    )
    card = out / "README.md"
    card.write_text(
        model_card(srec, cand, result, model=cfg.model, task=cfg.task, seq_len=cfg.seq_len)
        + exit_section
    )
    files["card"] = card
    if record:
        for kind, path in files.items():
            digest, size = _sha256(path)
            st.add_artifact(
                storage,
                candidate_id=cand.id,
                kind="onnx" if kind.startswith("onnx") else kind.removesuffix("_int8"),  # type: ignore[arg-type]
                path=str(path.resolve()),
                sha256=digest,
                bytes=size,
            )
    return result


def _fmt(value: Any, pattern: str = "{:.4f}") -> str:
    return "-" if value is None else pattern.format(value)


def _runtime_notes(flat: Mapping[str, Any]) -> str:
    """The transforms' notes on how the exported files differ from what is stored."""
    from paretoedge.compression import CompressionSpec
    from paretoedge.compression._transform import card_notes

    try:
        notes = card_notes(CompressionSpec.from_flat(flat))
    except ParetoEdgeError:  # a spec this version cannot read: the table above still shows it
        return ""
    return "".join(f"\n{note}\n" for note in notes)


def model_card(
    study: StudyRecord,
    cand: CandidateRecord,
    result: ExportResult,
    *,
    model: str,
    task: str,
    seq_len: int,
) -> str:
    """The README.md of an export: what it is, its numbers, and how to load each file."""
    from paretoedge._plot import spec_summary

    pred = result.predicted
    violations = list(pred.get("violations") or [])
    fits = "yes" if not violations else "no: " + "; ".join(violations)
    stored = cand.metrics_for(result.device)
    drift = ""
    if stored is not None and not math.isclose(
        stored.latency_ms, pred.get("latency_ms", 0.0), rel_tol=0.01
    ):
        drift = (
            "The predicted and stored latencies differ: the device profile or the cost "
            "model changed after the search; the prediction is today's.\n\n"
        )
    what = f"baseline `{cand.baseline_name}`" if cand.is_baseline else spec_summary(cand.flat)
    spec_rows = "\n".join(f"| `{k}` | `{v}` |" for k, v in sorted(cand.flat.items())) or (
        "| (none) | uncompressed |"
    )
    test_rows = "\n".join(f"| `{k}` | {v:.4f} |" for k, v in result.onnx_test_accuracy.items())
    check_rows = "\n".join(
        f"| `{c.file}` | {c.runtime} | {c.examples} | {c.agreement:.4f} | {c.accuracy:.4f} | "
        f"{c.reference_accuracy:.4f} | {c.max_abs_logit_diff:.2e} | {c.criterion} | "
        f"{'yes' if c.passed else '**no**'} |"
        for c in result.runtime_checks
    )
    mcu_rows = "".join(
        f"| predicted {key} (flatbuffer / TFLM arena: `bench/tflm_memory.py`) | "
        f"{pred[f'{key}_bytes']:,} B |\n"
        for key in ("flash", "sram")
        if pred.get(f"{key}_bytes") is not None
    )
    pte = [c.file for c in result.runtime_checks if c.runtime == "executorch"]
    pte_howto = (
        f"""- {", ".join(f"`{f}`" for f in pte)}: ExecuTorch programs, XNNPACK delegate
  (`pip install 'paretoedge[executorch]'`); same inputs as the ONNX file:
  `executorch.runtime.Runtime.get().load_program("{pte[0]}").load_method("forward")`
  `.execute([input_ids, attention_mask, token_type_ids])`.
"""
        if pte
        else ""
    )
    lib = result.tvm_library.name
    if result.tvm_linked:
        tvm_howto = f"""```python
from pathlib import Path
from paretoedge.export import load_tvm_library
run = load_tvm_library(Path("tvm"))   # {lib} + params.npz + inputs.json
logits = run(input_ids=ids, attention_mask=mask, token_type_ids=types)
```"""
    else:
        tvm_howto = (
            f"`tvm/{lib}` holds the object files built for `{result.device}`'s target "
            "(see `tvm/inputs.json`); link them on the device, e.g. "
            "`tvm.runtime.load_module` after `tvm.contrib.cc.create_shared` with the device's "
            "compiler, then call `main(*inputs, *params)` with `params.npz` in order."
        )
    return f"""# {study.name} / trial {cand.trial_number} for {result.device}

Compressed `{model}` for task `{task}`: {what}.
Exported by `paretoedge export {study.name} {cand.trial_number} --device {result.device}`
from study `{study.name}` (seed {study.seed}), rebuilt from the stored configuration.

## Configuration

| key | value |
|---|---|
{spec_rows}
{_runtime_notes(cand.flat)}
## Metrics

| metric | value |
|---|---|
| validation accuracy (stored) | {_fmt(cand.accuracy)} |
| validation accuracy (rebuilt model) | {result.reproduced_accuracy:.4f} |
| test accuracy (stored) | {_fmt(cand.test_accuracy)} |
| size | {_fmt(cand.size_bytes and cand.size_bytes / 1e6, "{:.3f} MB")} |
| parameters | {_fmt(cand.parameters, "{:,}")} |
| sparsity | {_fmt(cand.sparsity, "{:.3f}")} |
| predicted latency on {result.device} | {pred.get("latency_ms", 0.0):.3f} ms |
| stored latency on {result.device} | {_fmt(stored and stored.latency_ms, "{:.3f} ms")} |
| predicted peak memory | {pred.get("peak_memory_bytes", 0) / 1e6:.3f} MB |
{mcu_rows}| predicted energy | {_fmt(pred.get("energy_mj"), "{:.3f} mJ")} |
| fits the device | {fits} |

{drift}Test accuracy of the exported ONNX files (onnxruntime, CPU):

| file | test accuracy |
|---|---|
{test_rows}

Each exported file run in its own runtime on the test split, against the PyTorch candidate
(agreement: share of examples with the same predicted class; int8 files are held to
accuracy within one point instead):

| file | runtime | n | agreement | accuracy | PyTorch | max abs logit diff | criterion | passed |
|---|---|---|---|---|---|---|---|---|
{check_rows}

## Files and how to load them

- `hf/`: `paretoedge.compression.load_compressed("hf")` (pruned shapes and quantised
  layers restored; plain `from_pretrained` cannot express them).
- `model.onnx` (and `model.int8.onnx` when quantised):
  `onnxruntime.InferenceSession("model.onnx")`, inputs `input_ids`, `attention_mask`,
  `token_type_ids` of shape [1, {seq_len}] int64, output `logits`.
{pte_howto}- `tvm/{lib}`: TVM build for `{result.device}`.

{tvm_howto}
"""
