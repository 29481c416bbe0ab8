"""Device profiles: bundled files validate, bad files fail with the file and field named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paretoedge.cli import main
from paretoedge.errors import DeviceError, UnknownNameError
from paretoedge.hardware_profiles import (
    DeviceProfile,
    list_profiles,
    load_profile,
    parse_profile,
    profile_names,
    write_profile,
)
from paretoedge.settings import get_settings

REQUIRED = {"rpi4", "pixel-a76", "mali-g76", "stm32h7", "host", "host-ort"}


@pytest.fixture
def devices_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PARETOEDGE_DEVICES_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def _yaml_of(name: str) -> str:
    from importlib import resources

    return (
        resources.files("paretoedge.hardware_profiles") / "devices" / f"{name}.yaml"
    ).read_text()


def test_bundled_profiles_validate() -> None:
    profiles = {p.name: p for p in list_profiles()}
    assert REQUIRED <= set(profiles)
    assert profiles["stm32h7"].kind == "mcu"
    assert profiles["stm32h7"].flash_bytes == 2 * 2**20
    assert profiles["stm32h7"].sram_bytes == 2**20
    assert profiles["mali-g76"].kind == "gpu"
    assert profiles["mali-g76"].target["device"] == "mali"
    assert profiles["rpi4"].target["mcpu"] == "cortex-a72"
    assert profiles["host"].runtime == "tvm-default"
    assert profiles["host-ort"].runtime == "onnxruntime"
    for p in profiles.values():
        assert p.peak_gops["int8"] >= p.peak_gops["fp32"]


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_every_number_has_a_source_comment(name: str) -> None:
    text = _yaml_of(name)
    assert "Sources:" in text or "Source" in text


def test_unknown_device_lists_known() -> None:
    with pytest.raises(UnknownNameError) as err:
        load_profile("rpi5")
    assert "rpi4" in str(err.value) and "stm32h7" in str(err.value)


def test_user_directory_adds_and_overrides(devices_dir: Path) -> None:
    text = _yaml_of("rpi4").replace("name: rpi4", "name: my-board")
    (devices_dir / "my-board.yaml").write_text(text)
    (devices_dir / "rpi4.yaml").write_text(
        _yaml_of("rpi4").replace("memory_bandwidth_gbs: 3.3", "memory_bandwidth_gbs: 9.9")
    )
    assert "my-board" in profile_names()
    assert load_profile("my-board").source.endswith("my-board.yaml")
    assert load_profile("rpi4").memory_bandwidth_gbs == 9.9


def test_missing_field_names_file_and_field(devices_dir: Path) -> None:
    text = "\n".join(
        line
        for line in _yaml_of("rpi4").replace("name: rpi4", "name: broken").splitlines()
        if not line.startswith("memory_bandwidth_gbs")
    )
    (devices_dir / "broken.yaml").write_text(text)
    with pytest.raises(DeviceError, match=r"broken\.yaml.*memory_bandwidth_gbs"):
        load_profile("broken")


def test_negative_bandwidth_names_value(devices_dir: Path) -> None:
    text = (
        _yaml_of("rpi4")
        .replace("name: rpi4", "name: neg")
        .replace("memory_bandwidth_gbs: 3.3", "memory_bandwidth_gbs: -4.2")
    )
    (devices_dir / "neg.yaml").write_text(text)
    with pytest.raises(DeviceError, match=r"neg\.yaml.*memory_bandwidth_gbs=-4\.2"):
        load_profile("neg")


def test_unknown_runtime_and_nested_field(devices_dir: Path) -> None:
    base = _yaml_of("rpi4").replace("name: rpi4", "name: bad")
    (devices_dir / "bad.yaml").write_text(base.replace("runtime: onnxruntime", "runtime: tflite"))
    with pytest.raises(DeviceError, match="runtime='tflite'"):
        load_profile("bad")
    (devices_dir / "bad.yaml").write_text(base.replace("fp32: 48.0", "fp32: 0"))
    with pytest.raises(DeviceError, match=r"peak_gops\.fp32=0"):
        load_profile("bad")


def test_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(DeviceError, match="mapping"):
        parse_profile("- a\n- b\n", "x.yaml")
    with pytest.raises(DeviceError, match="not valid YAML"):
        parse_profile("a: [", "x.yaml")


def test_write_profile_round_trips(tmp_path: Path) -> None:
    p = load_profile("stm32h7")
    out = write_profile(p, tmp_path / "copy.yaml", header="copied\nfor a test")
    again = parse_profile(out.read_text(), str(out))
    assert isinstance(again, DeviceProfile)
    assert again == p
    assert out.read_text().startswith("# copied\n# for a test\n")


def test_cli_devices_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["devices", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert REQUIRED <= {r["name"] for r in rows}


def test_cli_devices_table(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    assert main(["devices"]) == 0
    assert "stm32h7" in capsys.readouterr().out


def test_cli_bad_profile_exit_2(devices_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (devices_dir / "neg.yaml").write_text(
        _yaml_of("rpi4")
        .replace("name: rpi4", "name: neg")
        .replace("memory_bandwidth_gbs: 3.3", "memory_bandwidth_gbs: -1")
    )
    assert main(["devices"]) == 2
    err = capsys.readouterr().err
    assert "neg.yaml" in err and "memory_bandwidth_gbs" in err
    assert len(err.strip().splitlines()) == 1


def test_cli_predict_unknown_device(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", str(tmp_path / "m.onnx"), "--device", "nope"]) == 2
    assert "device" in capsys.readouterr().err
