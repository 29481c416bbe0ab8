"""``pe_measured_memory``: TFLM's measured flash/SRAM stored beside the prediction."""

from __future__ import annotations

from typing import Any

import pytest
from _storage_helpers import study_kwargs

from paretoedge.errors import ConfigError, NotFoundError
from paretoedge.storage import (
    create_study,
    get_measured_memory,
    upsert_candidate,
    upsert_device_metrics,
    upsert_measured_memory,
)

SIZES = {
    "flash_bytes": 464_848,
    "sram_bytes": 101_440,
    "predicted_flash_bytes": 469_632,
    "predicted_sram_bytes": 101_664,
}


def _candidate(storage: Any) -> int:
    create_study(storage, **study_kwargs())
    cand = upsert_candidate(storage, study="s1", trial_number=0, state="complete",
                            spec={"quant.bits": 8}, accuracy=0.8, size_bytes=1000)  # fmt: skip
    upsert_device_metrics(storage, candidate_id=cand.id, device="stm32h7", latency_ms=9.0,
                          peak_memory_bytes=500_000, flash_bytes=470_000,
                          sram_bytes=91_000)  # fmt: skip
    return cand.id


def test_upsert_replaces_and_keeps_the_prediction(storage: Any) -> None:
    cid = _candidate(storage)
    first = upsert_measured_memory(storage, candidate_id=cid, device="stm32h7",
                                   runtime="tflite-micro", pointer_bytes=8, **SIZES)  # fmt: skip
    assert first.flash_error_pct == pytest.approx((469_632 - 464_848) / 464_848 * 100)
    assert first.sram_error_pct == pytest.approx((101_664 - 101_440) / 101_440 * 100)
    again = {**SIZES, "sram_bytes": 102_000}
    upsert_measured_memory(storage, candidate_id=cid, device="stm32h7",
                           runtime="tflite-micro", pointer_bytes=8, **again)  # fmt: skip
    (got,) = get_measured_memory(storage, candidate_ids=[cid], device="stm32h7").values()
    assert got.sram_bytes == 102_000 and got.pointer_bytes == 8
    assert got.to_dict()["runtime"] == "tflite-micro"
    assert get_measured_memory(storage, candidate_ids=[cid], device="rpi4") == {}
    assert get_measured_memory(storage, candidate_ids=[], device="stm32h7") == {}


@pytest.mark.parametrize(
    ("field", "value"),
    [("flash_bytes", 0), ("sram_bytes", -5), ("predicted_sram_bytes", 1.5),
     ("pointer_bytes", 2), ("device", ""), ("runtime", "x" * 33)],
)  # fmt: skip
def test_bad_values_name_the_field_and_store_nothing(storage: Any, field: str, value: Any) -> None:
    cid = _candidate(storage)
    kwargs: dict[str, Any] = {"device": "stm32h7", "runtime": "tflite-micro",
                              "pointer_bytes": 8, **SIZES, field: value}  # fmt: skip
    with pytest.raises(ConfigError) as err:
        upsert_measured_memory(storage, candidate_id=cid, **kwargs)
    assert err.value.field == field
    assert get_measured_memory(storage, candidate_ids=[cid], device="stm32h7") == {}


def test_unknown_candidate(storage: Any) -> None:
    _candidate(storage)
    with pytest.raises(NotFoundError, match="candidate id 999"):
        upsert_measured_memory(storage, candidate_id=999, device="stm32h7",
                               runtime="tflite-micro", pointer_bytes=8, **SIZES)  # fmt: skip
