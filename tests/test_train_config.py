"""The training config (sim2real.policies.config): layers, type checks, --help."""

import dataclasses

import pytest
import yaml

from sim2real.cli import main
from sim2real.policies.config import (
    TASK_OVERRIDES,
    PPOConfig,
    TrainConfig,
    build_config,
    describe,
    from_dict,
    to_dict,
)


def write(tmp_path, data, name="run.yaml"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def flat_keys(data, prefix=""):
    keys = []
    for key, value in data.items():
        if isinstance(value, dict):
            keys += flat_keys(value, f"{prefix}{key}.")
        else:
            keys.append(prefix + key)
    return keys


# ------------------------------------------------------------------- precedence


def test_precedence_defaults_task_file_set(tmp_path):
    defaults = TrainConfig()
    assert defaults.ppo.entropy_coef == 0.01 and defaults.num_envs == 1024
    # the task's overrides beat the defaults
    task = build_config("arm-reach")
    assert task.task == "arm-reach"
    assert task.ppo.entropy_coef == TASK_OVERRIDES["arm-reach"]["ppo.entropy_coef"] == 0.0
    assert task.num_envs == 512 and task.model.actor_hidden == [128, 128]
    assert task.ppo.gamma == defaults.ppo.gamma  # untouched fields keep their defaults
    # the file beats the task's overrides
    path = write(tmp_path, {"num_envs": 64, "ppo": {"entropy_coef": 0.005, "lam": 0.9}})
    filed = build_config("arm-reach", path)
    assert filed.num_envs == 64 and filed.ppo.entropy_coef == 0.005 and filed.ppo.lam == 0.9
    assert filed.model.actor_hidden == [128, 128]  # the task's, not in the file
    # --set beats the file; later pairs beat earlier ones
    final = build_config(
        "arm-reach", path, ["ppo.entropy_coef=0.002", "num_envs=32", "num_envs=16"]
    )
    assert final.ppo.entropy_coef == 0.002 and final.num_envs == 16
    assert final.ppo.lam == 0.9  # the file's
    # a task without overrides gets the defaults
    assert build_config("go2-rough").model == defaults.model


def test_every_task_override_is_a_valid_key_and_every_task_builds():
    from sim2real.sim.tasks import TASKS

    assert set(TASK_OVERRIDES) <= set(TASKS)
    for task in TASKS:
        config = build_config(task)
        data = to_dict(config)
        for key, value in TASK_OVERRIDES.get(task, {}).items():
            node = data
            for part in key.split("."):
                node = node[part]
            assert node == value, (task, key)


def test_set_values_are_parsed_as_yaml():
    config = build_config(
        "go2-flat",
        overrides=[
            "model.actor_hidden=[64, 32]",
            "tensorboard=false",
            "ppo.gamma=1",  # an int where a float is expected becomes a float
            "ppo.learning_rate=3e-4",  # the --help example (PyYAML reads 3e-4 as a string)
            "ppo.desired_kl=1.0e-2",
            "run_name=my run",
            "randomization=",  # empty: task defaults
            "model.activation=tanh",
        ],
    )
    assert config.model.actor_hidden == [64, 32]
    assert config.tensorboard is False
    assert config.ppo.gamma == 1.0 and isinstance(config.ppo.gamma, float)
    assert config.ppo.learning_rate == 3e-4 and isinstance(config.ppo.learning_rate, float)
    assert config.ppo.desired_kl == 0.01
    assert config.run_name == "my run" and config.randomization == ""
    assert config.model.activation == "tanh"


def test_scientific_notation_in_a_yaml_file(tmp_path):
    path = write(tmp_path, "ppo:\n  learning_rate: 3e-4\n  desired_kl: 2E-3\n")
    config = build_config("go2-flat", path)
    assert config.ppo.learning_rate == pytest.approx(3e-4)
    assert config.ppo.desired_kl == pytest.approx(2e-3)


# ------------------------------------------------------------------ type errors


@pytest.mark.parametrize(
    ("pair", "key", "expects"),
    [
        ("num_envs=abc", "num_envs", "int"),
        ("num_envs=1.5", "num_envs", "int"),
        ("num_envs=true", "num_envs", "int"),  # a bool is no int here
        ("tensorboard=1", "tensorboard", "bool"),
        ("ppo.gamma=high", "ppo.gamma", "float"),
        ("ppo.gamma=true", "ppo.gamma", "float"),
        ("model.actor_hidden=64", "model.actor_hidden", "list"),
        ("model.activation=3", "model.activation", "one of elu, relu, tanh"),
        ("model.recurrent=rnn", "model.recurrent", "one of none, gru, lstm"),
        ("ppo.learning_rate=3e-4x", "ppo.learning_rate", "float"),
    ],
)
def test_type_errors_name_the_key(pair, key, expects):
    with pytest.raises(ValueError, match=rf"'{key}' expects {expects}"):
        build_config("arm-reach", overrides=[pair])


def test_type_errors_in_a_file_name_the_dotted_key(tmp_path):
    path = write(tmp_path, {"ppo": {"num_epochs": "five"}})
    with pytest.raises(ValueError, match=r"'ppo\.num_epochs' expects int.*'five'"):
        build_config("arm-reach", path)


# ----------------------------------------------------------------- unknown keys


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("ppo.learnin_rate=1e-3", r"unknown config key 'ppo\.learnin_rate'.*learning_rate"),
        ("num_env=3", r"unknown config key 'num_env'"),
        ("optimizer.lr=3", r"unknown config key 'optimizer\.lr'"),
        ("ppo=3", r"'ppo' is a section"),
        ("num_envs.x=3", r"'num_envs\.x'.*not a section"),
        ("num_envs", r"key=value.*'num_envs'"),
        ("=3", r"key=value"),
    ],
)
def test_unknown_keys_are_errors_naming_them(pair, message):
    with pytest.raises(ValueError, match=message):
        build_config("arm-reach", overrides=[pair])


def test_unknown_keys_in_a_file(tmp_path):
    with pytest.raises(ValueError, match=r"unknown config key 'model\.actor_hiden'"):
        build_config("arm-reach", write(tmp_path, {"model": {"actor_hiden": [8]}}))
    with pytest.raises(ValueError, match=r"unknown config key 'ppo\.gama'"):
        build_config("arm-reach", write(tmp_path, {"ppo.gama": 0.9}, "dotted.yaml"))


def test_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        build_config("arm-reach", tmp_path / "missing.yaml")
    with pytest.raises(ValueError, match="mapping"):
        build_config("arm-reach", write(tmp_path, "- 1\n- 2\n"))
    # an empty file changes nothing
    assert build_config("arm-reach", write(tmp_path, "", "empty.yaml")) == build_config("arm-reach")
    # a file may not retarget the run
    with pytest.raises(ValueError, match="task 'go2-flat'.*'arm-reach'"):
        build_config("arm-reach", write(tmp_path, {"task": "go2-flat"}, "task.yaml"))


# ------------------------------------------------------------ nested and dotted


def test_nested_and_dotted_yaml(tmp_path):
    nested = write(tmp_path, {"ppo": {"gamma": 0.9, "lam": 0.8}, "model": {"rnn_layers": 2}})
    dotted = write(tmp_path, {"ppo.gamma": 0.9, "ppo.lam": 0.8, "model.rnn_layers": 2}, "d.yaml")
    mixed = write(tmp_path, "ppo:\n  gamma: 0.9\nppo.lam: 0.8\nmodel:\n  rnn_layers: 2\n", "m.yaml")
    configs = [build_config("go2-flat", path) for path in (nested, dotted, mixed)]
    assert configs[0] == configs[1] == configs[2]
    assert configs[0].ppo.gamma == 0.9 and configs[0].ppo.lam == 0.8
    assert configs[0].model.rnn_layers == 2
    # the rest of each section keeps its values
    assert configs[0].ppo.clip_param == PPOConfig().clip_param
    assert configs[0].model.actor_hidden == [128, 128, 128]  # go2-flat's


def test_dict_round_trip_and_fresh_defaults():
    config = build_config("arm-reach", overrides=["model.recurrent=lstm", "ppo.lam=0.9"])
    data = to_dict(config)
    assert yaml.safe_load(yaml.safe_dump(data)) == data  # YAML- and checkpoint-friendly
    assert from_dict(data) == config
    with pytest.raises(ValueError, match="unknown config key 'ppo.nope'"):
        from_dict({**data, "ppo": {**data["ppo"], "nope": 1}})
    # every config owns its lists: changing one leaves the defaults alone
    a, b = TrainConfig(), TrainConfig()
    assert a.model.actor_hidden is not b.model.actor_hidden
    a.model.actor_hidden.append(7)
    assert TrainConfig().model.actor_hidden == [256, 128, 64]
    assert a.model is not b.model and a.distill.encoder_hidden is not b.distill.encoder_hidden
    # building does not mutate its inputs
    before = dict(TASK_OVERRIDES["arm-reach"])
    build_config("arm-reach", overrides=["model.actor_hidden=[4]"])
    assert before == TASK_OVERRIDES["arm-reach"]


# ------------------------------------------------------------------------ --help


def test_describe_covers_every_field_with_a_doc():
    rows = describe()
    keys = [row[0] for row in rows]
    assert sorted(keys) == sorted(flat_keys(to_dict(TrainConfig())))
    assert len(set(keys)) == len(keys)
    for key, kind, _default, doc in rows:
        assert doc.strip(), f"{key} has no doc"
        assert kind in {"int", "float", "str", "bool", "list"}, key
    by_key = {row[0]: row for row in rows}
    assert by_key["ppo.learning_rate"][1:3] == ("float", "0.001")
    assert by_key["model.actor_hidden"][1:3] == ("list", "[256, 128, 64]")
    assert by_key["tensorboard"][1:3] == ("bool", "True")
    # the sections are there with all their fields, not as rows of their own
    for section in ("model", "ppo", "distill", "curriculum"):
        assert section not in keys
        section_fields = dataclasses.fields(getattr(TrainConfig(), section))
        assert {f"{section}.{f.name}" for f in section_fields} <= set(keys)


def test_train_help_lists_every_field(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--set" in out and "--config" in out and "--resume" in out
    for key, kind, default, doc in describe():
        assert f"{key} ({kind}, default {default})" in out, key
        assert doc in out, key


def test_set_keeps_text_for_string_fields():
    """``--set randomization=off`` is the text "off", not YAML's boolean False."""
    config = build_config("point-reach", overrides=["randomization=off", "run_name=123"])
    assert config.randomization == "off" and config.run_name == "123"
