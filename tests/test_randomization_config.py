"""The randomization YAML schema: shipped defaults, exact round trips, errors that name things."""

import textwrap

import pytest

from sim2real.randomization import config as cfg
from sim2real.randomization.config import (
    ConfigError,
    RandomizationConfig,
    TermConfig,
    default_config,
    default_config_path,
    dump,
    dumps,
    load,
    loads,
)
from sim2real.sim.tasks import TASKS, make_env


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_has_a_default_that_loads_and_round_trips(task, tmp_path):
    config = default_config(task)
    assert config.schema_version == 1 and config.terms
    assert all(t.enabled for t in config.terms.values())  # on by default
    assert loads(dumps(config)) == config
    dump(config, tmp_path / "c.yaml")
    assert load(tmp_path / "c.yaml") == config
    assert dumps(load(tmp_path / "c.yaml")) == dumps(config)


def test_go2_rough_falls_back_to_the_go2_flat_file():
    assert default_config_path("go2-rough").name == "go2-flat.yaml"
    assert default_config_path("arm-reach").name == "arm-reach.yaml"


def test_sysid_style_config_round_trips_exactly():
    """Per-joint ``set`` ranges (what sysid writes), gaussians, params, odd floats."""
    config = RandomizationConfig(
        task="go2-flat",
        terms={
            "joint_damping": TermConfig(
                "reset",
                "uniform",
                "set",
                {"FL_hip_joint": (0.1 + 0.2, 0.31), "*_calf_joint": [1e-5, 2.5e-3]},
            ),
            "kp_scale": TermConfig("startup", "gaussian", "scale", (1.0, 0.05), enabled=False),
            "action_delay": TermConfig("reset", "uniform", "set", (0, 2)),
            "external_force": TermConfig(
                "interval",
                "log_uniform",
                "set",
                (1.0, 20.0),
                interval_s=(2.0, 4.0),
                params={"duration_s": [0.25, 0.5], "planar": False},
            ),
        },
    )
    text = dumps(config)
    again = loads(text)
    assert again == config
    assert again.terms["joint_damping"].range["FL_hip_joint"][0] == 0.1 + 0.2  # bit-exact
    assert again.terms["action_delay"].range == (0, 2)
    assert dumps(again) == text


def test_omitted_optional_fields_take_their_defaults():
    config = loads(
        "schema_version: 1\n"
        "terms:\n"
        "  kp_scale: {mode: reset, distribution: uniform, operation: scale, range: [0.9, 1.1]}\n"
    )
    term = config.terms["kp_scale"]
    assert config.task is None
    assert term.enabled is True and term.interval_s is None and term.params == {}


def _force(params: str) -> str:
    return _yaml(
        "external_force", mode="interval", operation="set", interval_s="[1, 2]", params=params
    )


GOOD = {"mode": "reset", "distribution": "uniform", "operation": "scale", "range": "[0.9, 1.1]"}


def _yaml(term: str, **fields: str) -> str:
    body = {**GOOD, **fields}
    lines = [f"    {k}: {v}" for k, v in body.items() if v is not None]
    return "schema_version: 1\nterms:\n  " + term + ":\n" + "\n".join(lines) + "\n"


BAD = [
    (
        _yaml("ground_friction", operation="set", range="[1.5, 0.4]"),
        "terms.ground_friction.range: low 1.5 > high 0.4",
    ),
    (_yaml("foo"), "terms.foo: unknown term 'foo' (known: ground_friction, foot_friction"),
    (
        _yaml("kp_scale", distribution="normal"),
        "terms.kp_scale.distribution: 'normal' is not one of uniform, log_uniform, gaussian",
    ),
    (
        _yaml("kp_scale", mode="sometimes"),
        "terms.kp_scale.mode: 'sometimes' is not one of startup, reset, interval, step",
    ),
    (
        _yaml("kp_scale", mode="step"),
        "terms.kp_scale.mode: 'step' is not allowed for kp_scale (allowed: startup, reset",
    ),
    (
        _yaml("kp_scale", operation="multiply"),
        "terms.kp_scale.operation: 'multiply' is not one of scale, add, set",
    ),
    (
        _yaml("action_delay", operation="scale", range="[0, 2]"),
        "terms.action_delay.operation: 'scale' is not allowed for action_delay (allowed: set)",
    ),
    (
        _yaml("action_delay", operation="set", range="[0, 1.5]"),
        "terms.action_delay.range: 1.5 is not a whole number",
    ),
    (
        _yaml("kp_scale", distribution="log_uniform", range="[0, 2]"),
        "terms.kp_scale.range: low 0 must be > 0 for log_uniform",
    ),
    (
        _yaml("kp_scale", distribution="gaussian", range="[1.0, -0.1]"),
        "terms.kp_scale.range: std -0.1 must be >= 0",
    ),
    (
        _yaml("kp_scale", range="[1, 2, 3]"),
        "terms.kp_scale.range: expected [low, high], got [1, 2, 3]",
    ),
    (_yaml("kp_scale", range="[a, 2]"), "terms.kp_scale.range: 'a' is not a number"),
    (_yaml("kp_scale", range=".nan"), "terms.kp_scale.range: expected [low, high], got nan"),
    (_yaml("kp_scale", range="[.inf, 2]"), "terms.kp_scale.range: inf is not finite"),
    (
        _yaml("base_mass", operation="add", range="{value: [0, 1]}"),
        "terms.base_mass.range: base_mass takes one [low, high] pair, not a per-name mapping",
    ),
    (
        _yaml("joint_damping", range="{FL_hip_joint: [2, 1]}"),
        "terms.joint_damping.range.FL_hip_joint: low 2 > high 1",
    ),
    (
        _yaml("joint_damping", range="{}"),
        "terms.joint_damping.range: the per-name mapping is empty",
    ),
    (
        _yaml("push", mode="interval", operation="add"),
        "terms.push.interval_s: required when mode is 'interval'",
    ),
    (
        _yaml("push", mode="interval", operation="add", interval_s="[0, 1]"),
        "terms.push.interval_s: need 0 < low <= high, got [0, 1]",
    ),
    (
        _yaml("kp_scale", interval_s="[1, 2]"),
        "terms.kp_scale.interval_s: only allowed when mode is 'interval', got [1, 2]",
    ),
    (_yaml("kp_scale", range=None), "terms.kp_scale.range: required field is missing"),
    (_yaml("kp_scale", rnage="[1, 2]"), "terms.kp_scale.rnage: unknown field (known: mode,"),
    (
        _yaml("kp_scale", enabled="'yes'"),
        "terms.kp_scale.enabled: expected true or false, got 'yes'",
    ),
    (
        _force("{foo: 1}"),
        "terms.external_force.params.foo: unknown parameter (known: duration_s, planar)",
    ),
    (
        _force("{planar: 3}"),
        "terms.external_force.params.planar: expected true or false, got 3",
    ),
    (
        _force("{duration_s: [2, 1]}"),
        "terms.external_force.params.duration_s: need 0 <= low <= high, got [2, 1]",
    ),
    (
        _yaml("kp_scale").replace("schema_version: 1", "schema_version: 2"),
        "schema_version: 2 is not supported (supported: 1)",
    ),
    (
        _yaml("kp_scale").replace("schema_version: 1\n", ""),
        "schema_version: required field is missing",
    ),
    (
        "schema_version: 1\nterms: {}\nfoo: 1\n",
        "foo: unknown field (known: schema_version, task, terms)",
    ),
    ("schema_version: 1\nterms: [1, 2]\n", "terms: expected a mapping of term names, got [1, 2]"),
    ("- just a list\n", "expected a mapping with schema_version, task, terms, got ['just a list']"),
    (
        "schema_version: 1\nterms: {kp_scale: [1, 2]}\n",
        "terms.kp_scale: expected a mapping of fields, got [1, 2]",
    ),
    ("schema_version: [1\n", "not valid YAML"),
    (
        _yaml("ground_friction", operation="set")
        + "  foot_friction:\n    mode: reset\n    distribution: uniform\n    operation: set\n"
        "    range: [0.5, 1.0]\n",
        "terms.foot_friction: conflicts with terms.ground_friction",
    ),
]


@pytest.mark.parametrize(
    ("text", "message"), BAD, ids=[m.split(":")[0] + str(i) for i, (_, m) in enumerate(BAD)]
)
def test_bad_config_errors_name_the_field_and_the_value(text, message):  # fmt: skip
    with pytest.raises(ConfigError) as error:
        loads(text)
    assert message in str(error.value)


def test_file_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(_yaml("ground_friction", operation="set", range="[1.5, 0.4]"))
    with pytest.raises(ConfigError, match=r"bad\.yaml: terms\.ground_friction\.range: low 1\.5"):
        load(path)


def test_configs_built_in_code_are_validated_too():
    config = RandomizationConfig(
        terms={"kp_scale": TermConfig("reset", "uniform", "scale", (2, 1))}
    )
    with pytest.raises(ConfigError, match=r"terms\.kp_scale\.range: low 2 > high 1"):
        make_env("go2-flat", 2, randomization=config)
    with pytest.raises(ConfigError, match=r"schema_version: 3 is not supported"):
        cfg.validate(RandomizationConfig(schema_version=3))


def _one_term(name, **fields) -> RandomizationConfig:
    base = {"mode": "reset", "distribution": "uniform", "operation": "scale", "range": (0.9, 1.1)}
    return RandomizationConfig(terms={name: TermConfig(**{**base, **fields})})


@pytest.mark.parametrize(
    ("task", "config", "message"),
    [
        (
            "arm-reach",
            _one_term("ground_friction", operation="set"),
            "terms.ground_friction: not applicable to task 'arm-reach': it declares no feet",
        ),
        (
            "arm-reach",
            _one_term("push", operation="add", mode="interval", interval_s=(1.0, 2.0)),
            "terms.push: not applicable to task 'arm-reach': robot 'panda' has no floating base",
        ),
        (
            "go2-flat",
            _one_term("joint_damping", range={"FL_hip": (0.5, 1.5)}),
            "terms.joint_damping.range.FL_hip: 'FL_hip' names no entry (entries: FL_hip_joint,",
        ),
        (
            "go2-flat",
            _one_term("joint_damping", range={"*_hip_joint": (0.5, 1.5), "FL_*": (1, 2)}),
            "terms.joint_damping.range.FL_*: 'FL_hip_joint' is already given by '*_hip_joint'",
        ),
        (
            "go2-flat",
            _one_term("action_delay", operation="set", range=(0, 3)),
            "terms.action_delay.range: high 3 > max_action_delay 2 of task 'go2-flat'",
        ),
        (
            "go2-flat",
            _one_term(
                "observation_noise", mode="step", operation="add", range={"ee_to_target": (0, 1)}
            ),
            "terms.observation_noise.range.ee_to_target: 'ee_to_target' names no entry",
        ),
        (
            "arm-reach",
            default_config("go2-flat"),
            "task: the config is for task 'go2-flat' (robot 'go2'), the env runs 'arm-reach'",
        ),
    ],
)
def test_configs_that_do_not_fit_the_robot_are_refused_at_bind(task, config, message):
    with pytest.raises(ConfigError) as error:
        make_env(task, 2, nthread=1, randomization=config)
    assert message in str(error.value)


def test_make_env_randomization_argument(tmp_path):
    default = make_env("go2-flat", 2, nthread=1)
    assert default.randomization == default_config("go2-flat")
    assert make_env("go2-flat", 2, nthread=1, randomization="off").randomizer is None
    assert make_env("go2-flat", 2, nthread=1, randomization=False).randomizer is None
    config = _one_term("kp_scale")
    env = make_env("go2-flat", 2, nthread=1, randomization=config)
    assert env.randomization is config  # kept, so a curriculum can change its ranges
    path = tmp_path / "mine.yaml"
    path.write_text(dumps(config))
    assert make_env("go2-flat", 2, nthread=1, randomization=path).randomization == config
    assert make_env("go2-flat", 2, nthread=1, randomization=str(path)).randomization == config
    with pytest.raises(TypeError, match="randomization must be None"):
        make_env("go2-flat", 2, nthread=1, randomization=3)


def test_shipped_yaml_documents_every_term_it_sets():
    """Each default term carries a comment (the documented default), and README tables it."""
    readme = (cfg.DEFAULTS_DIR.parent / "README.md").read_text()
    for path in cfg.DEFAULTS_DIR.glob("*.yaml"):
        text = path.read_text()
        for name in load(path).terms:
            line = next(line for line in text.splitlines() if line.startswith(f"  {name}:"))
            assert "#" in line, f"{path.name}: {name} has no comment"
            assert f"`{name}`" in readme, f"README.md does not table {name}"


def test_dumped_text_is_plain_yaml():
    text = dumps(_one_term("kp_scale"))
    assert (
        textwrap.dedent(
            """\
        terms:
          kp_scale:
            mode: reset
            distribution: uniform
            operation: scale
            range: [0.9, 1.1]
            enabled: true
        """
        )
        in text
    )
