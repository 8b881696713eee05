"""The configuration system in-process: JSON round trips, `--set` parsing, errors, presets."""

from __future__ import annotations

import dataclasses
import functools
import json

import pytest

from genlab.config import all_keys, apply_overrides, dumps, from_dict, to_dict
from genlab.errors import UsageError
from genlab.registry import FAMILIES
from genlab.runconfig import default_config, run_config_class

FAMILY_PRESETS = [(f, p) for f, (_, presets) in FAMILIES.items() for p in [None, *presets]]


def cli_text(value) -> str:
    """How a user would type `value` after `--set key=`."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return json.dumps(value)
    return str(value)


@pytest.mark.parametrize(("family", "preset"), FAMILY_PRESETS)
def test_every_default_config_and_preset_round_trips_through_json(family, preset):
    cfg = default_config(family, preset)
    text = json.dumps(to_dict(cfg))
    back = from_dict(run_config_class(family), json.loads(text))
    assert back == cfg
    assert json.loads(dumps(cfg)) == to_dict(cfg)
    assert set(to_dict(cfg)) == {"model", "data", "train"}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_key_can_be_set_from_its_command_line_text(family):
    """Each setting of every family parses back from how a user types its value."""
    cfg = default_config(family)
    keys = all_keys(run_config_class(family))
    assert "train.lr" in keys and "data.tabular.target" in keys
    flat = {}
    for key in keys:
        node = to_dict(cfg)
        for part in key.split("."):
            node = node[part]
        flat[key] = node
    same = apply_overrides(cfg, [f"{k}={cli_text(v)}" for k, v in flat.items()])
    assert same == cfg


@pytest.mark.parametrize(
    ("override", "key", "expected"),
    [
        ("train.steps=30", "train.steps", 30),
        ("train.steps=1_000", "train.steps", 1000),
        ("train.lr=5e-4", "train.lr", 0.0005),
        ("train.lr=3", "train.lr", 3.0),
        ("train.bf16=true", "train.bf16", True),
        ("train.bf16=YES", "train.bf16", True),
        ("model.channels=[64,32]", "model.channels", [64, 32]),
        ("model.channels=64,32", "model.channels", [64, 32]),
        ("model.channels=[ 8, 16 ]", "model.channels", [8, 16]),
        ("train.betas=[0.5,0.99]", "train.betas", [0.5, 0.99]),
        ("train.optimizer=sgd", "train.optimizer", "sgd"),
        ("model.likelihood=gaussian", "model.likelihood", "gaussian"),
        ("data.task=regression", "data.task", "regression"),
        ("data.tabular.target=price", "data.tabular.target", "price"),
        ("data.target=price", "data.tabular.target", "price"),  # the 0.x name (an alias)
        ("data.tokenizer=bpe", "data.text.tokenizer", "bpe"),
        ("data.vocab_size=300", "data.text.vocab_size", 300),
        (" train.seed =7", "train.seed", 7),
    ],
)
def test_overrides_parse_values_to_the_declared_type(override, key, expected):
    base = default_config("vae")
    cfg = apply_overrides(base, [override])
    value = functools.reduce(getattr, key.split("."), cfg)
    assert value == expected
    assert type(value) is type(expected)
    assert functools.reduce(getattr, key.split("."), base) != expected  # it changed something


def test_overrides_return_a_copy_and_later_ones_win():
    base = default_config("mlp")
    cfg = apply_overrides(base, ["train.lr=0.1", "train.bf16=true", "train.lr=0.2"])
    assert (cfg.train.lr, cfg.train.bf16) == (0.2, True)
    assert base == default_config("mlp")  # the original is untouched
    assert apply_overrides(cfg, ["train.bf16=false", "train.bf16=off"]).train.bf16 is False


@pytest.mark.parametrize(
    ("family", "override", "suggestion"),
    [
        ("vae", "train.lrr=0.1", "train.lr"),
        ("vae", "model.latnt_dim=8", "model.latent_dim"),
        ("vae", "trian.steps=5", "train.steps"),  # a misspelt group
        ("vae", "lr=0.1", "train.lr"),  # the group left out
        ("mlp", "model.hiden=[8]", "model.hidden"),
        ("cnn", "model.kernel=3", "model.kernel_size"),
    ],
)
def test_unknown_key_names_the_closest_valid_keys(family, override, suggestion):
    with pytest.raises(UsageError) as e:
        apply_overrides(default_config(family), [override])
    msg = str(e.value)
    bad = override.split("=")[0]
    assert f"'{bad}'" in msg
    assert "did you mean" in msg
    # the closest key is the first suggestion
    assert msg.split("did you mean ")[1].startswith(suggestion), msg


def test_a_key_of_another_family_is_unknown():
    with pytest.raises(UsageError, match="model.kernel_size"):
        apply_overrides(default_config("vae"), ["model.kernel_size=3"])


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("train.steps=abc", ["train.steps", "integer", "abc"]),
        ("train.steps=1.5", ["train.steps", "integer"]),
        ("train.lr=fast", ["train.lr", "number", "fast"]),
        ("train.bf16=maybe", ["train.bf16", "true or false"]),
        ("model.channels=[8,x]", ["model.channels", "[64,32]"]),
        ("model.channels=8,x", ["model.channels", "integer"]),
        ("train.optimizer=rmsprop", ["train.optimizer", "adamw, adam, sgd", "rmsprop"]),
        ("model.likelihood=poisson", ["model.likelihood", "bernoulli, gaussian"]),
    ],
)
def test_a_value_of_the_wrong_type_names_the_key(override, words):
    with pytest.raises(UsageError) as e:
        apply_overrides(default_config("vae"), [override])
    for word in words:
        assert word in str(e.value)


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("train=3", ["'train' is a group", "set one of its keys"]),
        ("train.lr.warm=3", ["'train.lr' is a single setting"]),
        ("train.lr", ["key.path=value", "train.lr"]),
        ("train.lr 0.1", ["key.path=value"]),
    ],
)
def test_malformed_overrides_are_usage_errors(override, words):
    with pytest.raises(UsageError) as e:
        apply_overrides(default_config("mlp"), [override])
    for word in words:
        assert word in str(e.value)


@pytest.mark.parametrize(
    ("family", "override", "key"),
    [
        ("vae", "train.steps=0", "train.steps"),
        ("vae", "train.batch_size=-4", "train.batch_size"),
        ("vae", "train.ema_decay=1.5", "train.ema_decay"),
        ("vae", "train.lr=0", "train.lr"),
        ("vae", "train.patience=-1", "train.patience"),
        ("vae", "train.betas=[0.9]", "train.betas"),
        ("vae", "model.beta=-1", "model.beta"),
        ("vae", "model.channels=[8,-1]", "model.channels"),
        ("vae", "model.latent_dim=0", "model.latent_dim"),
        ("vae", "model.iw_samples=0", "model.iw_samples"),
        ("mlp", "model.hidden=[0]", "model.hidden"),
        ("mlp", "model.dropout=1", "model.dropout"),
        ("cnn", "model.kernel_size=4", "model.kernel_size"),
        ("cnn", "model.channels=[0,4]", "model.channels"),
    ],
)
def test_validation_rejects_bad_values_naming_the_key(family, override, key):
    value = override.split("=")[1]
    with pytest.raises(UsageError) as e:
        apply_overrides(default_config(family), [override])
    assert key in str(e.value)
    assert value.strip("[]").split(",")[-1] in str(e.value)  # and what it got


def test_from_dict_rejects_unknown_keys_and_wrong_types_of_a_saved_config():
    data = to_dict(default_config("vae"))
    data["train"]["stpes"] = 5
    with pytest.raises(UsageError, match=r"'train\.stpes'.*did you mean train\.steps"):
        from_dict(run_config_class("vae"), data)
    data = to_dict(default_config("vae"))
    data["model"]["channels"] = "wide"
    with pytest.raises(UsageError, match="model.channels"):
        from_dict(run_config_class("vae"), data)
    data = to_dict(default_config("vae"))
    data["train"] = 3
    with pytest.raises(UsageError, match="'train' expects a group"):
        from_dict(run_config_class("vae"), data)


@pytest.mark.parametrize(("family", "preset"), [fp for fp in FAMILY_PRESETS if fp[1]])
def test_presets_are_functions_that_return_the_configuration(family, preset):
    fn = FAMILIES[family][1][preset]
    assert callable(fn)
    run = run_config_class(family)()
    returned = fn(run)
    assert isinstance(returned, run_config_class(family))
    assert returned == default_config(family, preset)
    assert returned != default_config(family)  # a preset changes something
    # each call builds a fresh config: changing one does not leak into the next
    default_config(family, preset).train.steps = 1
    assert default_config(family, preset).train.steps == returned.train.steps != 1


def test_presets_apply_before_overrides():
    cfg = apply_overrides(default_config("vae", "demo"), ["train.steps=7"])
    assert cfg.train.steps == 7
    assert cfg.model.hidden == default_config("vae", "demo").model.hidden == 256


def test_unknown_preset_lists_the_family_presets():
    with pytest.raises(UsageError) as e:
        default_config("vae", "demoo")
    msg = str(e.value)
    assert "'demoo'" in msg and "demo, mnist" in msg


def test_unknown_family_suggests_the_closest():
    with pytest.raises(UsageError, match="did you mean vae"):
        default_config("vea")
    with pytest.raises(UsageError) as e:
        default_config("transformer")
    assert all(name in str(e.value) for name in FAMILIES)


def test_all_keys_lists_leaves_only():
    cls = run_config_class("vae")
    keys = all_keys(cls)
    assert len(keys) == len(set(keys))
    fields = {f.name for f in dataclasses.fields(cls)}
    assert fields == {"model", "data", "train"}
    assert not any(k in fields for k in keys)
    assert {"model.latent_dim", "train.ema_decay", "data.seed"} <= set(keys)


def test_saved_configs_with_the_old_flat_data_keys_still_load():
    """config.json of a genlab 0.x run: data.target/tokenizer/vocab_size at the top of data."""
    saved = to_dict(default_config("gpt"))
    saved["data"] = {
        "val_fraction": 0.2,
        "test_fraction": 0.1,
        "target": "price",
        "task": "auto",
        "seed": 3,
        "tokenizer": "bpe",
        "vocab_size": 300,
    }
    cfg = from_dict(run_config_class("gpt"), saved)
    assert (cfg.data.val_fraction, cfg.data.seed) == (0.2, 3)
    assert cfg.data.tabular.target == "price"
    assert (cfg.data.text.tokenizer, cfg.data.text.vocab_size) == ("bpe", 300)
    assert "target" not in to_dict(cfg)["data"]  # saved again in the new form
    assert to_dict(cfg)["data"]["text"] == {"tokenizer": "bpe", "vocab_size": 300}


def test_an_old_key_and_its_new_name_must_agree():
    data = {"target": "a", "tabular": {"target": "b"}}
    with pytest.raises(UsageError, match="'data.target' and 'data.tabular.target' are the same"):
        from_dict(run_config_class("mlp"), {"data": data})
    same = from_dict(run_config_class("mlp"), {"data": {"target": "a", "tabular": {"target": "a"}}})
    assert same.data.tabular.target == "a"
    cfg = apply_overrides(default_config("mlp"), ["data.target=a", "data.tabular.target=b"])
    assert cfg.data.tabular.target == "b"  # on the command line the later one wins


@pytest.mark.parametrize(
    ("override", "suggestion"),
    [("data.targt=x", "data.tabular.target"), ("data.tokeniser=bpe", "data.text.tokenizer")],
)
def test_unknown_data_keys_suggest_the_kind_groups(override, suggestion):
    with pytest.raises(UsageError, match=f"did you mean {suggestion}"):
        apply_overrides(default_config("mlp"), [override])
    with pytest.raises(UsageError, match=f"did you mean {suggestion}"):
        key, value = override.split("=")
        from_dict(run_config_class("mlp"), {"data": {key.split(".")[1]: value}})


def test_data_config_has_one_group_per_kind_with_settings():
    from genlab.data import KINDS, DataConfig

    groups = {f.name for f in dataclasses.fields(DataConfig)} - {
        "val_fraction",
        "test_fraction",
        "seed",
        "task",
        "labels_per_class",
        "classes",
    }
    assert groups == {name for name, kind in KINDS.items() if dataclasses.fields(kind.Config)}
    assert {"text", "tabular"} <= groups
