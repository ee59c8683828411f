"""YAML parameter files: dictionary access, save/load and schema validation."""

from __future__ import annotations

import pytest

from loihi_slayer.errors import FormatError, ParameterError, ParameterTypeError
from loihi_slayer.params import ANY, SLAYER_SCHEMA, Params

SLAYER_YAML = """\
simulation:
  Ts: 1.0
  tSample: 1450
neuron:
  type: SRMALPHA
  theta: 10
  tauSr: 1.0
  tauRef: 1.0
  scaleRef: 2     # relative to theta
  tauRho: 1
  scaleRho: 1
layer:
  - {dim: 34x34x2, wScale: 0.5}
  - {dim: 16c5z}
  - {dim: 10}
training:
  error:
    type: NumSpikes
    tgtSpikeRegion: {start: 0, stop: 350}
    tgtSpikeCount:  {true: 60, false: 10}
  path:
    out: Trained/
"""


@pytest.fixture
def yaml_file(tmp_path):
    path = tmp_path / "network.yaml"
    path.write_text(SLAYER_YAML)
    return path


def test_dictionary_access(yaml_file):
    p = Params(yaml_file)
    assert p["neuron"]["theta"] == 10
    assert p["simulation"]["Ts"] == 1.0
    assert p["layer"][0] == {"dim": "34x34x2", "wScale": 0.5}
    assert p["training"]["error"]["tgtSpikeCount"] == {True: 60, False: 10}
    assert "neuron" in p and len(p) == 4 and p.get("missing", 3) == 3
    p["training"]["learning"] = {"etaW": 0.01}
    assert p["training"]["learning"]["etaW"] == 0.01


def test_save_roundtrip(yaml_file, tmp_path):
    p = Params(yaml_file)
    p["neuron"]["theta"] = 12
    p.save(tmp_path / "out.yaml")
    q = Params(tmp_path / "out.yaml")
    assert q == p and q["neuron"]["theta"] == 12
    assert list(q.keys()) == ["simulation", "neuron", "layer", "training"]


def test_validate_slayer_schema(yaml_file):
    Params(yaml_file, schema=SLAYER_SCHEMA)  # no error
    p = Params(yaml_file)
    p["neuron"]["tauSR"] = 2  # typo
    with pytest.raises(ParameterError) as info:
        p.validate(SLAYER_SCHEMA)
    msg = str(info.value)
    assert "'neuron.tauSR'" in msg and "tauSr" in msg and "theta" in msg


def test_validate_lists_and_nested():
    schema = {"layer": [{"dim": ANY}], "sim": {"Ts": ANY}, "free": ANY}
    Params({"layer": [{"dim": 3}], "sim": {"Ts": 1}, "free": {"anything": [1, 2]}}).validate(schema)
    with pytest.raises(ParameterError, match=r"'layer\[1\]\.size'.*allowed keys.*dim"):
        Params({"layer": [{"dim": 3}, {"size": 4}]}).validate(schema)
    with pytest.raises(ParameterError, match="unknown parameter key 'extra'"):
        Params({"extra": 1}).validate(schema)
    with pytest.raises(ParameterError, match="'sim' must be a mapping"):
        Params({"sim": 5}).validate(schema)


def test_malformed_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(FormatError, match="invalid YAML"):
        Params(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("- 1\n- 2\n")
    with pytest.raises(FormatError, match="mapping"):
        Params(scalar)
    with pytest.raises(ParameterTypeError):
        Params(42)  # type: ignore[arg-type]
    # safe_load: no arbitrary python objects
    evil = tmp_path / "evil.yaml"
    evil.write_text("x: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(FormatError):
        Params(evil)


def test_nmnist_parameters_file():
    p = Params("/work/shared/datasets/nmnist-small/parameters.yaml")
    assert p["input_x"] == 34 and p["sr_params"]["tau"] == 1
