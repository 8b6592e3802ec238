"""Config validation: defaults fill missing keys; every bad config names its key."""

import re

import pytest

from conftest import balanced_rows, write_jsonl
from w2s_eda.config import split_sizes
from w2s_eda.study import check_local_data, validate_config
from w2s_eda.errors import ConfigError


def test_empty_config_takes_the_schemas_defaults():
    config = validate_config({})
    assert config["seeds"] == [0]
    assert config["offline"] is True
    assert config["splits"] == {"weak_train": 200, "w2s_train": 200, "test": 200}
    assert config["datasets"] == {"epistemic_reasoning": {}}


def test_partial_splits_keep_the_other_defaults_and_per_dataset_override(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", balanced_rows(5))
    config = validate_config(
        {"splits": {"test": 50}, "datasets": {"mine": {"path": str(data), "splits": {"test": 4}}}}
    )
    assert config["splits"] == {"weak_train": 200, "w2s_train": 200, "test": 50}
    assert split_sizes(config, "mine") == {"weak_train": 200, "w2s_train": 200, "test": 4}


@pytest.mark.parametrize(
    "config, expected",
    [
        ({"bogus": 1}, "unknown config key 'bogus'"),
        ({"splits": {"valid": 10}}, "unknown config key 'splits.valid'"),
        ({"seeds": "zero"}, "config key 'seeds': 'zero' is not of type 'array'"),
        ({"seeds": [0, 0]}, "config key 'seeds'"),
        ({"offline": "yes"}, "config key 'offline'"),
        ({"splits": {"test": -4}}, "config key 'splits.test': -4 is less than the minimum of 2"),
        ({"splits": {"test": 7}}, "config key 'splits.test': 7 must be even"),
        ({"datasets": {}}, "config key 'datasets'"),
        ({"datasets": {"a/b": {}}}, "config key 'datasets': name 'a/b'"),
        ({"datasets": {"sciq": {"colour": 1}}}, "unknown config key 'datasets.sciq.colour'"),
    ],
)
def test_schema_errors_name_the_key(config, expected):
    with pytest.raises(ConfigError) as raised:
        validate_config(config)
    assert expected in str(raised.value)


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(ConfigError) as raised:
        validate_config({"datasets": {"imagenet": {}}})
    message = str(raised.value)
    assert "config key 'datasets.imagenet': unknown dataset 'imagenet'" in message
    for known in ("sciq", "boolq", "anthropic_hh", "cosmos_qa", "amazon_polarity", "strategyqa"):
        assert known in message


def test_hub_dataset_while_offline_fails_with_a_hint():
    with pytest.raises(ConfigError) as raised:
        validate_config({"datasets": {"sciq": {}}})
    message = str(raised.value)
    assert "datasets.sciq" in message and "allenai/sciq" in message
    assert "offline: false" in message and "path" in message


def test_hub_dataset_is_accepted_when_online():
    assert validate_config({"offline": False, "datasets": {"boolq": {}}})["datasets"] == {
        "boolq": {}
    }


def test_missing_local_file_names_key_and_file(tmp_path):
    missing = tmp_path / "nowhere.jsonl"
    with pytest.raises(ConfigError) as raised:
        validate_config({"datasets": {"mine": {"path": str(missing)}}})
    assert f"config key 'datasets.mine.path': file '{missing}' does not exist" in str(raised.value)


def test_missing_test_path_is_named(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", balanced_rows(2))
    with pytest.raises(ConfigError, match="datasets.mine.test_path"):
        validate_config({"datasets": {"mine": {"path": str(data), "test_path": "gone.jsonl"}}})


def test_local_only_keys_need_a_path():
    with pytest.raises(ConfigError, match="'datasets.epistemic_reasoning.label' only applies"):
        validate_config({"datasets": {"epistemic_reasoning": {"label": "y"}}})


def test_path_and_registry_together_is_an_error(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", balanced_rows(2))
    with pytest.raises(ConfigError, match="a local file \\('path'\\) takes neither"):
        validate_config({"datasets": {"x": {"path": str(data), "registry": "sciq"}}})
    with pytest.raises(ConfigError, match="'datasets.x': 'registry' and 'revision'"):
        validate_config({"datasets": {"x": {"path": str(data), "revision": "abc"}}})


def test_hub_datasets_are_pinned_and_a_revision_overrides_the_pin():
    from w2s_eda.data.registry import DATASETS
    from w2s_eda.prep import dataset_info

    hub = [entry for entry in DATASETS.values() if entry.needs_hub]
    assert hub and all(re.fullmatch(r"[0-9a-f]{40}", entry.hub_revision) for entry in hub)
    assert dataset_info("boolq", {})["hub_revision"] == DATASETS["boolq"].hub_revision
    assert dataset_info("boolq", {"revision": "v1.0"})["hub_revision"] == "v1.0"
    assert "hub_revision" not in dataset_info("mine", {"path": "x.jsonl"})
    with pytest.raises(ConfigError, match="'datasets.epistemic_reasoning.revision': dataset "
                                          "'epistemic_reasoning' does not come from the hub"):
        validate_config({"datasets": {"epistemic_reasoning": {"revision": "abc"}}})


def test_pair_with_label_is_an_error(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"chosen": "a", "rejected": "b"}])
    spec = {"path": str(data), "pair": {"chosen": "chosen", "rejected": "rejected"}, "label": "x"}
    with pytest.raises(ConfigError, match="'pair' builds text and label itself"):
        validate_config({"datasets": {"x": spec}})


def test_registry_alias_under_another_name():
    config = validate_config({"datasets": {"er": {"registry": "epistemic_reasoning"}}})
    assert config["datasets"]["er"] == {"registry": "epistemic_reasoning"}


def test_unknown_nested_key_is_named_beside_another_error():
    """A failing key inside train.strong (an allOf) must not hide an unknown sibling key, nor
    make its known siblings look unknown."""
    with pytest.raises(ConfigError) as raised:
        validate_config({"train": {"strong": {"epochs": 0, "lr": 0.1, "bogus": 1}}})
    lines = str(raised.value).splitlines()[1:]
    assert len(lines) == 2
    assert "config key 'train.strong.epochs': 0 is less than the minimum of 1" in lines[0]
    assert lines[1].strip().startswith("unknown config key 'train.strong.bogus'; allowed here:")


def test_local_data_is_read_at_parse_time_naming_key_file_and_row(tmp_path):
    good = write_jsonl(tmp_path / "good.jsonl", balanced_rows(2))
    check_local_data(validate_config({"datasets": {"mine": {"path": str(good)}}}))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "label": 1}\n{"text": "b", "label": 0}\n{"text": "c", "la')
    config = validate_config({"datasets": {"ok": {"path": str(good)}, "mine": {"path": str(bad)}}})
    with pytest.raises(ConfigError) as raised:
        check_local_data(config)
    assert str(raised.value).startswith(f"config key 'datasets.mine': {bad}, line 3: invalid JSON")


def test_command_line_strings_inside_lists_and_mappings_are_read_as_yaml():
    config = validate_config({"seeds": ["0", "1"], "debate": {"n_rounds": "3", "judge": {"enabled": "true"}},
                              "train": {"weak": {"layer": "2", "lr": "null"}}})
    assert config["seeds"] == [0, 1] and config["debate"]["n_rounds"] == 3
    assert config["debate"]["judge"]["enabled"] is True
    assert config["train"]["weak"]["layer"] == 2 and config["train"]["weak"]["lr"] is None
    # a string where the schema wants one is left alone
    assert validate_config({"train": {"weak": {"layer": "last"}}})["train"]["weak"]["layer"] == "last"
    with pytest.raises(ConfigError, match="config key 'splits.test': 7 must be even"):
        validate_config({"splits": {"test": "7"}})


def test_yaml_1_1_booleans_are_not_taken_for_true_or_false():
    with pytest.raises(ConfigError, match="config key 'offline'"):
        validate_config({"offline": "yes"})


def test_label_conflicts_applies_to_registered_and_local_datasets(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", balanced_rows(2))
    config = validate_config({"datasets": {"fever": {}, "winowhy": {"label_conflicts": "error"},
                                           "mine": {"path": str(data), "label_conflicts": "drop"}}})
    # No schema default, so the registry's (`drop` for fever) still applies.
    assert config["datasets"]["fever"] == {}
    assert config["datasets"]["winowhy"] == {"label_conflicts": "error"}
    with pytest.raises(ConfigError, match="config key 'datasets.fever.label_conflicts'"):
        validate_config({"datasets": {"fever": {"label_conflicts": "keep"}}})
