"""The measured matmul table: validated in profiles, interpolated, used by the cost model,
and measured for real on this machine."""

from __future__ import annotations

import dataclasses
import math

import pytest
import yaml

from paretoedge.errors import DeviceError
from paretoedge.hardware_profiles import load_profile, parse_profile, predict
from paretoedge.hardware_profiles._profile import MatmulTable

TABLE = MatmulTable(k=(32, 128), n=(64, 256), ns_per_mac=((0.2, 0.4), (0.8, 6.4)))


def test_lookup_is_exact_on_the_grid_and_log_linear_between() -> None:
    assert TABLE.ns(32, 64) == pytest.approx(0.2)
    assert TABLE.ns(128, 256) == pytest.approx(6.4)
    # K halfway in log space between 32 and 128 (64), N on the grid: geometric mean
    assert TABLE.ns(64, 64) == pytest.approx(math.sqrt(0.2 * 0.8))
    assert TABLE.ns(64, 256) == pytest.approx(math.sqrt(0.4 * 6.4))
    # outside the grid: clamped to the edge
    assert TABLE.ns(8, 16) == pytest.approx(0.2)
    assert TABLE.ns(4096, 4096) == pytest.approx(6.4)


def _host_yaml_with(table: object) -> str:
    from importlib import resources

    text = (resources.files("paretoedge.hardware_profiles") / "devices" / "host.yaml").read_text()
    raw = yaml.safe_load(text)
    raw["matmul_table"] = table
    return yaml.safe_dump(raw)


def test_profile_round_trips_its_table() -> None:
    text = _host_yaml_with(TABLE.to_yaml_dict())
    profile = parse_profile(text, "t.yaml")
    assert profile.matmul_table == dataclasses.replace(TABLE, source="")
    again = parse_profile(yaml.safe_dump(profile.to_yaml_dict()), "u.yaml")
    assert again.matmul_table == profile.matmul_table


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ({"k": [32, 16], "n": [64], "ns_per_mac": [[1.0], [1.0]]}, "increasing"),
        ({"k": [32], "n": [64, 128], "ns_per_mac": [[1.0]]}, "1 rows of 2 numbers"),
        ({"k": [32], "n": [64], "ns_per_mac": [[-1.0]]}, "positive"),
    ],
)
def test_malformed_table_names_the_field(table: dict, words: str) -> None:
    with pytest.raises(DeviceError, match="matmul_table") as err:
        parse_profile(_host_yaml_with(table), "bad.yaml")
    assert words in str(err.value) and "bad.yaml" in str(err.value)
    assert len(str(err.value)) < 200  # the table itself is not dumped into the message


@pytest.mark.tvm
def test_cost_model_uses_the_table(make_onnx) -> None:
    """With a table, fp32 matmul time is multiply-adds x table cost x scale: doubling every
    entry doubles the matmul kernels' time and nothing else."""
    path = make_onnx(hidden=64, heads=2, ffn=128, seq_len=16)
    host = dataclasses.replace(load_profile("host"), launch_overhead_us=0.0)
    flat = MatmulTable(k=(8, 2048), n=(8, 2048), ns_per_mac=((1.0, 1.0), (1.0, 1.0)))
    double = dataclasses.replace(flat, ns_per_mac=((2.0, 2.0), (2.0, 2.0)))
    one = predict(path, dataclasses.replace(host, matmul_table=flat))
    two = predict(path, dataclasses.replace(host, matmul_table=double))
    mm1 = sum(k.latency_ms for k in one.kernels if k.kind == "matmul")
    mm2 = sum(k.latency_ms for k in two.kernels if k.kind == "matmul")
    assert mm1 > 0 and mm2 == pytest.approx(2 * mm1, rel=1e-6)
    other1 = one.latency_ms - mm1
    assert two.latency_ms - mm2 == pytest.approx(other1, rel=1e-6)
    # at 1 ns per multiply-add and scale s, the matmuls cost s x (multiply-adds) ns
    macs = sum(k.ops for k in one.kernels if k.kind == "matmul") / 2
    scale = host.kernel_scale["matmul"]
    assert mm1 == pytest.approx(macs * 1e-6 * scale, rel=0.05)


@pytest.mark.tvm
def test_measured_table_sees_cache_conflicts() -> None:
    """On this machine an untuned matmul walking a 4 KiB-strided weight column that does not
    stay in cache is many times slower per multiply-add than one whose column does (measured
    0.26 vs 6.5 ns); a factor of 3 leaves room for a loaded machine."""
    from paretoedge.hardware_profiles._measure import measure_matmul_table

    ((small, big),) = measure_matmul_table([1024], [64, 1024], m=16)
    assert small > 0 and big > 3 * small


def test_from_dict_validates_like_a_profile() -> None:
    assert MatmulTable.from_dict(TABLE.to_yaml_dict()) == TABLE
    with pytest.raises(DeviceError, match=r"t\.json: invalid matmul table: .*increasing"):
        MatmulTable.from_dict({"k": [32, 16], "n": [64], "ns_per_mac": [[1.0], [1.0]]}, "t.json")


def test_a_large_malformed_table_gives_a_short_message() -> None:
    axis = list(range(1, 41))
    rows = [[1.0] * 40 for _ in axis]
    rows[5] = [1.0]
    with pytest.raises(DeviceError, match="40 rows of 40 numbers") as err:
        parse_profile(_host_yaml_with({"k": axis, "n": axis, "ns_per_mac": rows}), "big.yaml")
    assert "matmul_table=" in str(err.value) and len(str(err.value)) < 200
