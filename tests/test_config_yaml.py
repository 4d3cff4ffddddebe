"""Strict YAML (issue 30): a key given twice and any alias are refused naming the line, an
alias bomb fails before anything expands, and no error line embeds a huge value."""

from __future__ import annotations

import pytest

from ednas.config import StrictYamlError, from_dict, load_yaml, parse_yaml
from ednas.errors import ConfigError, shorten
from ednas.pipeline.config import apply_override
from ednas.recipe import TrainConfig


def _bomb(levels: int = 9) -> str:
    """The "billion laughs": each level lists the previous one nine times (9**levels strings)."""
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefghijk", "bcdefghijkl"[: levels - 1]):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("text, line, key", [
    ("train: {epochs: 3}\ndata: {}\ntrain: {epochs: 5}\n", 3, "'train'"),  # a section twice
    ("model:\n  arch: a\n  input_size: 64\n  arch: b\n", 4, "'arch'"),
    ("model: {arch: a, arch: b}\n", 1, "'arch'"),  # flow style, one line
    ("- {x: 1}\n- {y: 1, y: 2}\n", 2, "'y'"),
    ("1: a\n1.0: b\n", 2, "1.0"),  # equal as numbers: one would replace the other
])
def test_duplicate_keys_are_refused_naming_key_and_line(text, line, key):
    with pytest.raises(StrictYamlError) as info:
        parse_yaml(text)
    assert str(info.value).startswith(f"line {line}: key {key} is given twice")


def test_the_same_key_in_different_mappings_is_fine():
    assert parse_yaml("a: {x: 1}\nb: {x: 2}\n") == {"a": {"x": 1}, "b": {"x": 2}}


def test_an_inline_merge_key_is_not_a_duplicate():
    assert parse_yaml("<<: {a: 1, b: 2}\na: 3\n") == {"a": 3, "b": 2}


def test_an_alias_bomb_fails_at_its_first_alias_with_a_short_line(tmp_path):
    path = tmp_path / "bomb.yml"
    path.write_text(_bomb())
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    message = str(info.value)
    assert message == f"{path}: line 2: alias *a is not supported (ednas reads no anchors or aliases); write the value out"


def test_any_alias_is_refused():
    with pytest.raises(StrictYamlError, match="line 2: alias \\*w"):
        parse_yaml("a: &w 0.5\nb: *w\n")


def test_an_unused_anchor_is_harmless():
    assert parse_yaml("a: &w 0.5\n") == {"a": 0.5}


def test_deep_nesting_and_huge_numbers_are_one_line_errors(tmp_path):
    deep = tmp_path / "deep.yml"
    deep.write_text("a: " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_yaml(deep)
    big = tmp_path / "big.yml"
    big.write_text("a: " + "9" * 5000 + "\n")
    with pytest.raises(ConfigError, match="not a usable YAML value") as info:
        load_yaml(big)
    assert len(str(info.value)) < 200


def test_long_values_are_cut_in_messages():
    with pytest.raises(ConfigError) as info:
        from_dict(TrainConfig, {"epochs": "x" * 1_000_000}, "train")
    assert len(str(info.value)) < 150 and "..." in str(info.value)
    with pytest.raises(ConfigError) as info:
        from_dict(TrainConfig, {"y" * 1_000_000: 1}, "train")
    assert "unknown key 'yyy" in str(info.value) and str(info.value).count("y") < 100


@pytest.mark.parametrize("make, expect", [
    (lambda: "abc", "'abc'"),
    (lambda: "x" * 1000, None),
    (lambda: list(range(10**6)), "[0, 1, 2, 3, 4, 5, ...]"),
    (lambda: 10**5000, "<a int too long to show>"),
], ids=["short", "long-string", "long-list", "huge-int"])
def test_shorten(make, expect):
    text = shorten(make())
    assert len(text) <= 80
    if expect is not None:
        assert text == expect


def test_set_refuses_a_duplicate_key_and_an_alias():
    with pytest.raises(ConfigError, match="--set search: key 'trials' is given twice"):
        apply_override({}, "search={trials: 1, trials: 2}")
    assert apply_override({}, "search.trials=3") == {"search": {"trials": 3}}
    with pytest.raises(ConfigError, match="--set search.trials: alias \\*a is not supported"):
        apply_override({}, "search.trials=[&a 1, *a]")
    assert apply_override({}, "data.kind=[unclosed") == {"data": {"kind": "[unclosed"}}  # not YAML: the text


def test_the_strict_loader_is_a_safe_loader():
    """No tag that builds Python objects: the strict loader only narrows yaml.SafeLoader."""
    import yaml

    from ednas.config import _StrictLoader

    assert issubclass(_StrictLoader, yaml.SafeLoader)
    with pytest.raises(yaml.YAMLError):
        parse_yaml("a: !!python/object/apply:os.system ['true']\n")
