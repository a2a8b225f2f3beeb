"""Report parameters: YAML 1.2 value parsing, type inference from the parameters cell, validation errors."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from workbench.errors import WorkbenchError
from workbench.reports.params import (
    ParameterError,
    effective_parameters,
    load_yaml,
    merge_parameter_sources,
    notebook_parameters,
    parameters_table,
    parse_value,
    validate_parameters,
)

TINY = Path(__file__).parent / "notebooks" / "tiny_report.ipynb"


def _notebook(tmp_path: Path, source: str, tagged: bool = True) -> Path:
    cell = new_code_cell(source)
    if tagged:
        cell.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[cell, new_code_cell("print(1)")])
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, str(path))
    return path


@pytest.mark.parametrize("text, expected", [
    ("3", 3), ("-7", -7), ("0.5", 0.5), ("1e-3", 0.001), ("true", True), ("False", False), ("null", None),
    ("~", None), ("2:4", "2:4"), ("4:8-T", "4:8-T"), ("yes", "yes"), ("on", "on"), ("2024-01-01", "2024-01-01"),
    ("[2:4, int8]", ["2:4", "int8"]), ("{a: 1, b: [x]}", {"a": 1, "b": ["x"]}), ('"3"', "3"), ("", ""),
    ("a: b: c", "a: b: c"), ("0x10", 16), ("digits-mlp", "digits-mlp"),
])
def test_parse_value_is_yaml_12_core(text, expected):
    value = parse_value(text)
    assert value == expected and type(value) is type(expected)


def test_yaml_file_keeps_nm_formats_as_strings():
    assert load_yaml("formats: [[2:4, fp8_e4m3], [1:2]]\nx: 1:30") == {"formats": [["2:4", "fp8_e4m3"], ["1:2"]],
                                                                     "x": "1:30"}


def test_types_from_annotations_and_defaults(tmp_path):
    nb = _notebook(tmp_path, "\n".join([
        'model = "digits-mlp"  # model spec',
        "n = 3  # a count",
        "lr = 0.1",
        "flag = True",
        'formats: list[str] = ["2:4"]  # formats (list)',
        "sizes = [1, 2.5]",
        "opts = {'a': 1}",
        "quick: bool | None = None  # None = follow WORKBENCH_QUICK",
        "anything = None  # help with = signs == fine",
        "ratio: float = 1",
        "computed = len('abc')  # not a literal",
        "a = b = 2",
    ]))
    params = notebook_parameters(nb)
    types = {name: str(p.type) for name, p in params.items()}
    assert types == {"model": "str", "n": "int", "lr": "float", "flag": "bool", "formats": "list[str]",
                     "sizes": "list[float]", "opts": "dict[int]", "quick": "bool | None", "anything": "any",
                     "ratio": "float", "computed": "any", "a": "int", "b": "int"}
    assert params["model"].help == "model spec"
    assert params["anything"].help == "help with = signs == fine"  # papermill's own inspection drops this line
    assert params["formats"].default == ["2:4"]
    table = parameters_table(nb)
    assert list(table.columns) == ["name", "type", "default", "help"] and len(table) == len(params)


def test_validation_accepts_right_types_and_widens_ints(tmp_path):
    nb = _notebook(tmp_path, 'n = 3\nlr = 0.1\nformats: list[str] = ["2:4"]\nquick: bool | None = None\nx = None')
    out = validate_parameters(nb, {"n": 5, "lr": 1, "formats": ["int8", "2:4"], "quick": None, "x": [1, "a"]})
    assert out == {"n": 5, "lr": 1.0, "formats": ["int8", "2:4"], "quick": None, "x": [1, "a"]}
    assert isinstance(out["lr"], float)
    assert validate_parameters(nb, {"quick": True}) == {"quick": True}


@pytest.mark.parametrize("values, needle", [
    ({"m": 1}, "unknown parameter 'm'"),
    ({"n": "3"}, "expected int, got str"),
    ({"n": 2.5}, "expected int, got float"),
    ({"n": True}, "expected int, got bool"),
    ({"lr": "fast"}, "expected float, got str"),
    ({"formats": "2:4"}, "expected list[str], got str"),
    ({"formats": ["2:4", 3]}, "parameter 'formats'[1]: expected str, got int"),
    ({"n": None}, "got None"),
    ({"quick": "yes"}, "expected bool | None"),
    ({"lr": float("nan")}, "non-finite"),
    ({"x": object()}, "must be literals"),
])
def test_validation_rejects(tmp_path, values, needle):
    nb = _notebook(tmp_path, 'n = 3\nlr = 0.1\nformats: list[str] = ["2:4"]\nquick: bool | None = None\nx = None')
    with pytest.raises(ParameterError, match=None) as info:
        validate_parameters(nb, values)
    assert needle in str(info.value)
    assert isinstance(info.value, WorkbenchError) and isinstance(info.value, ValueError)


def test_unknown_name_lists_declared_ones():
    with pytest.raises(ParameterError) as info:
        validate_parameters(TINY, {"xx": 1, "scale": 2})
    msg = str(info.value)
    assert "'xx'" in msg and "x, scale, label" in msg


def test_notebook_without_parameters_cell_rejects_every_parameter(tmp_path):
    nb = _notebook(tmp_path, "n = 3", tagged=False)
    assert notebook_parameters(nb) == {}
    with pytest.raises(ParameterError, match="no cell tagged 'parameters'"):
        validate_parameters(nb, {"n": 4})
    assert validate_parameters(nb, {}) == {}


def test_effective_parameters_merge_defaults(tmp_path):
    nb = _notebook(tmp_path, 'n = 3\nname = "a"\ncomputed = len("abc")')
    declared = notebook_parameters(nb)
    assert effective_parameters(declared, {"n": 4}) == {"n": 4, "name": "a", "computed": 'len("abc")'}


def test_merge_sources_order(tmp_path):
    f1 = tmp_path / "a.yaml"
    f1.write_text("n: 1\nformats: [2:4]\nname: from-file\n")
    merged = merge_parameter_sources([f1], [("n", "2"), ("lr", "0.5")], {"name": "explicit"})
    assert merged == {"n": 2, "formats": ["2:4"], "name": "explicit", "lr": 0.5}
    bad = tmp_path / "b.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ParameterError, match="mapping"):
        merge_parameter_sources([bad])
    with pytest.raises(ParameterError, match="identifier"):
        merge_parameter_sources([], [("not-a-name", "1")])
