"""ONNX export with the policy contract: parity, the contract, bad files, atomic writes, CLI.

Tiny point-reach policies (MLP, GRU, LSTM, and a distilled student) are trained for a
few iterations once per module and exported once each; go2-flat and arm-reach are
exported from untrained (random-init) networks for the contract and shape checks.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from sim2real.cli import main
from sim2real.export import exporter
from sim2real.export.contract import (
    SCHEMA_VERSION,
    ContractError,
    PolicyContract,
    PolicyFileError,
)
from sim2real.export.exporter import export_checkpoint, export_policy
from sim2real.export.loading import load_policy
from sim2real.export.model_file import METADATA_KEY, graph_sha256, write_atomically
from sim2real.export.parity import ParityError
from sim2real.export.source import load_source, source_from_state
from sim2real.policies.checkpoint import load_checkpoint, save_checkpoint
from sim2real.policies.config import build_config, to_dict
from sim2real.policies.distillation import Distiller
from sim2real.policies.evaluation import ActorCriticController
from sim2real.policies.runner import Trainer, build_model
from sim2real.sim.tasks import make_env

FAST = ["nthread=1", "tensorboard=false", "torch_threads=1", "num_envs=32", "max_iterations=5"]
KINDS = {
    "mlp": [],
    "gru": ["model.recurrent=gru", "model.rnn_hidden=16"],
    "lstm": ["model.recurrent=lstm", "model.rnn_hidden=16", "model.rnn_layers=2"],
    "teacher": ["model.actor_group=critic"],
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """``checkpoint(kind)``: the run folder of a tiny point-reach policy, trained once."""
    runs = {}

    def get(kind: str):
        if kind not in runs:
            run_dir = tmp_path_factory.mktemp(kind)
            if kind == "student":
                config = build_config(
                    "point-reach",
                    overrides=[*FAST, "max_iterations=3", f"distill.teacher={get('teacher')}",
                               "distill.history_length=4", f"log_dir={run_dir}", "run_name=s"],
                )  # fmt: skip
                distiller = Distiller(config)
                distiller.learn()
                run_dir = distiller.run_dir
            else:
                config = build_config("point-reach", overrides=[*FAST, *KINDS[kind]])
                Trainer(config, run_dir=run_dir).learn()
            runs[kind] = run_dir
        return runs[kind]

    return get


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):
    """``exported(kind)``: the ``ExportResult`` of that policy, exported once."""
    results = {}

    def get(kind: str):
        if kind not in results:
            output = tmp_path_factory.mktemp(f"{kind}-onnx") / "policy.onnx"
            results[kind] = export_checkpoint(checkpoint(kind), output, task="point-reach")
        return results[kind]

    return get


def untrained_source(task: str):
    """The deployable policy of a random-init actor-critic of ``task`` (default sizes)."""
    config = build_config(task)
    env = make_env(task, 1, nthread=1, randomization="off")
    model = build_model(config, env)
    state = {
        "task": task,
        "config": to_dict(config),
        "model": model.state_dict(),
        "obs_sizes": dict(env.obs_sizes),
        "num_actions": env.num_actions,
        "iteration": 0,
    }
    return source_from_state(state, f"untrained {task}")


def rewrite(path, edit=None, model_edit=None):
    """Rewrite a policy file with its contract dict and/or its model edited in place."""
    model = onnx.load(path)
    entry = next(p for p in model.metadata_props if p.key == METADATA_KEY)
    if edit is not None:
        contract = json.loads(entry.value)
        edit(contract)
        entry.value = json.dumps(contract)
    if model_edit is not None:
        model_edit(model)
    path.write_bytes(model.SerializeToString())


def copy_of(result, tmp_path, name="copy.onnx"):
    target = tmp_path / name
    target.write_bytes(result.onnx_path.read_bytes())
    return target


# ------------------------------------------------------------------------------ parity


@pytest.mark.parametrize("kind", ["mlp", "gru", "lstm", "student"])
def test_export_passes_parity_on_random_and_recorded_observations(exported, kind):
    report = exported(kind).parity
    assert report.passed and report.tolerance == 1e-5
    assert {s.name for s in report.sets} == {"random", "recorded"}
    for s in report.sets:
        assert s.observations >= 1000 and s.steps >= 200
        assert s.resets > s.envs  # starts mid-sequence, not only at step 0
        assert s.max_abs_action_diff <= 1e-5
        if kind in ("gru", "lstm"):
            assert s.max_abs_state_diff <= 1e-5
        else:
            assert s.max_abs_state_diff is None
    assert exported(kind).contract.parity == report.to_dict()


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_recurrent_policy_follows_torch_through_episodes(exported, checkpoint, kind):
    """Driving the env with onnxruntime for 300 steps (resets at 100, 200) tracks torch."""
    policy = load_policy(exported(kind).onnx_path)
    reference = ActorCriticController(load_source(checkpoint(kind)).network)
    env = make_env("point-reach", 4, seed=5, nthread=1)
    obs, starts = env.reset(5), np.ones(4, bool)
    reference.reset(4)
    state, resets, worst = None, 0, 0.0
    for _ in range(300):
        actions, state = policy(obs["policy"], state, starts)
        with torch.inference_mode():
            expected = reference.act(obs, torch.from_numpy(starts)).numpy()
        worst = max(worst, float(np.abs(actions - expected).max()))
        result = env.step(actions)
        obs, starts = result.obs, result.terminated | result.time_outs
        resets += int(starts.sum())
    assert resets >= 8 and worst <= 1e-5


def test_starts_zero_the_recurrent_state(exported):
    policy = load_policy(exported("lstm").onnx_path)
    obs = np.random.default_rng(0).normal(size=(3, 9)).astype(np.float32)
    noise = np.random.default_rng(1).normal(size=policy.initial_state(3).shape)
    fresh = policy(obs, policy.initial_state(3))
    restarted = policy(obs, noise.astype(np.float32), np.array([True, False, True]))
    np.testing.assert_array_equal(restarted[0][[0, 2]], fresh[0][[0, 2]])
    np.testing.assert_array_equal(restarted[1][:, [0, 2]], fresh[1][:, [0, 2]])
    assert not np.allclose(restarted[0][1], fresh[0][1])


# ------------------------------------------------------------------------ the file format


@pytest.mark.parametrize(
    ("kind", "inputs", "outputs"),
    [
        ("mlp", {"obs": ["batch", 9]}, {"actions": ["batch", 2]}),
        (
            "lstm",
            {"obs": ["batch", 9], "hidden_in": [4, "batch", 16], "starts": ["batch"]},
            {"actions": ["batch", 2], "hidden_out": [4, "batch", 16]},
        ),
        ("student", {"obs_history": ["batch", 4, 9]}, {"actions": ["batch", 2]}),
    ],
)
def test_graph_io_names_dynamic_batch_and_opset(exported, kind, inputs, outputs):
    model = onnx.load(exported(kind).onnx_path)

    def shapes(values):
        dims = {v.name: v.type.tensor_type.shape.dim for v in values}
        return {name: [d.dim_param or d.dim_value for d in dim] for name, dim in dims.items()}

    assert shapes(model.graph.input) == inputs
    assert shapes(model.graph.output) == outputs
    assert [(o.domain, o.version) for o in model.opset_import if o.domain == ""] == [("", 18)]
    assert not any(n.op_type == "RandomNormal" for n in model.graph.node)  # mean action
    policy = load_policy(exported(kind).onnx_path)
    history = (4,) if kind == "student" else ()
    for batch in (1, 5):
        obs = np.zeros((batch, *history, 9), np.float32)
        actions, state = policy(obs, policy.initial_state(batch))
        assert actions.shape == (batch, 2)
        assert (state is None) == (kind != "lstm")


def test_normalization_is_in_the_graph_and_scale_is_not(exported, checkpoint):
    """Raw observations in, the network's mean action out; targets = offset + scale × a."""
    policy = load_policy(exported("mlp").onnx_path)
    model = load_source(checkpoint("mlp")).network
    obs = np.random.default_rng(2).normal(size=(16, 9)).astype(np.float32)
    actions, _ = policy(obs)
    with torch.inference_mode():
        expected = model.action_mean(torch.from_numpy(obs))[0].numpy()
    np.testing.assert_allclose(actions, expected, atol=1e-6)
    assert model.actor_normalizer.count > 0  # a trained normalizer, folded in
    contract = policy.contract
    assert contract.obs_normalization_in_graph and not contract.action_scale_in_graph
    targets = policy.joint_targets(actions)
    np.testing.assert_allclose(targets, np.asarray(contract.action_offset) + 0.5 * actions)
    with pytest.raises(ValueError, match=r"'obs' must have shape \(B, 9\)"):
        policy(obs[:, :8])


def test_policy_json_equals_the_embedded_contract(exported):
    result = exported("gru")
    model = onnx.load(result.onnx_path)
    embedded = json.loads(next(p.value for p in model.metadata_props if p.key == METADATA_KEY))
    assert json.loads(result.json_path.read_text()) == embedded == result.contract.to_dict()
    assert embedded["graph_sha256"] == graph_sha256(model)
    assert embedded["schema_version"] == SCHEMA_VERSION
    assert embedded["recurrent"] == {"cell": "gru", "layers": 1, "hidden_size": 16}
    producer = embedded["producer"]
    assert producer["config"]["model"]["recurrent"] == "gru"
    assert producer["checkpoint"]["file"] == "model_5.pt" and producer["checkpoint"]["sha256"]
    assert producer["commit"] is None or len(producer["commit"].split("+")[0]) == 40
    assert PolicyContract.from_json(result.json_path.read_text()) == result.contract


@pytest.mark.parametrize(
    ("task", "joints", "obs_size", "first_term"),
    [("go2-flat", 12, 45, "base_ang_vel"), ("arm-reach", 7, 24, "joint_pos_rel")],
)
def test_contract_states_the_task_and_robot_facts(tmp_path, task, joints, obs_size, first_term):
    result = export_policy(untrained_source(task), tmp_path / "p.onnx")
    contract = load_policy(result.onnx_path).contract
    env = make_env(task, 1, nthread=1, randomization="off")
    robot = env.robot
    assert contract.task == task and contract.robot == env.task.robot
    assert contract.joint_names == list(robot.joint_names) and contract.num_joints == joints
    np.testing.assert_array_equal(contract.default_joint_pos, robot.default_joint_pos)
    np.testing.assert_array_equal(contract.action_offset, robot.default_joint_pos)
    np.testing.assert_array_equal(contract.kp, robot.kp)
    np.testing.assert_array_equal(contract.kd, robot.kd)
    np.testing.assert_array_equal(contract.joint_pos_limits, robot.joint_limits)
    np.testing.assert_array_equal(contract.effort_limits, robot.effort_limits)
    np.testing.assert_array_equal(contract.velocity_limits, robot.velocity_limits)
    assert contract.control_period_s == pytest.approx(0.02)
    assert contract.action_scale == env.task.action_scale
    assert contract.observation_size == obs_size == env.obs_sizes["policy"]
    terms = env.task.observations["policy"]
    assert [t.name for t in contract.observation_terms] == [t.name for t in terms]
    assert contract.observation_terms[0].name == first_term
    if task == "go2-flat":
        command = next(t for t in contract.observation_terms if t.name == "velocity_command")
        assert command.scale == [2.0, 2.0, 0.25] and command.size == 3
    assert contract.inputs[0].shape == ["batch", obs_size]
    assert contract.outputs[0].shape == ["batch", joints]
    assert result.parity.passed


# ------------------------------------------------------------------------------ bad files


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_truncated_file_is_refused(exported, tmp_path, keep):
    data = exported("mlp").onnx_path.read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(PolicyFileError) as error:
        load_policy(path)
    assert str(path) in str(error.value)
    assert "truncated" in str(error.value) or isinstance(error.value, ContractError)


def test_corrupted_weights_fail_the_hash(exported, tmp_path):
    path = copy_of(exported("mlp"), tmp_path)
    data = bytearray(path.read_bytes())
    weights = onnx.load(path).graph.initializer[0].raw_data
    data[data.find(weights) + 17] ^= 0xFF  # one byte of the first layer's weights
    path.write_bytes(bytes(data))
    with pytest.raises(ContractError, match="graph_sha256") as error:
        load_policy(path)
    assert error.value.field == "graph_sha256"


def _nudge_weights(model):
    tensor = model.graph.initializer[-1]
    tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor) + 1e-3, tensor.name))


def _strip_metadata(model):
    del model.metadata_props[:]


def _garble_contract(model):
    next(p for p in model.metadata_props if p.key == METADATA_KEY).value = "{not json"


@pytest.mark.parametrize(
    ("model_edit", "field", "match"),
    [
        (_nudge_weights, "graph_sha256", "changed after export"),
        (_strip_metadata, f"metadata_props[{METADATA_KEY}]", "no policy contract"),
        (_garble_contract, None, "not valid JSON"),
    ],
)
def test_edited_model_is_refused(exported, tmp_path, model_edit, field, match):
    path = copy_of(exported("gru"), tmp_path)
    rewrite(path, model_edit=model_edit)
    with pytest.raises(PolicyFileError, match=match) as error:
        load_policy(path)
    assert getattr(error.value, "field", None) == field


def _set(key, value):
    return lambda c: c.__setitem__(key, value)


def _wrong_term_scale(c):
    c["observation_terms"][2]["scale"] = [1.0]  # one number for a 3-wide term


def _term_size(c):
    c["observation_terms"][1]["size"] += 1


def _term_and_input(c):
    _term_size(c)
    c["inputs"][0]["shape"][1] += 1  # consistent with itself, not with the graph


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (_set("schema_version", SCHEMA_VERSION + 1), "schema_version"),
        (lambda c: c.pop("kp"), "kp"),
        (lambda c: c["kd"].pop(), "kd"),
        (_set("unexpected", 1), "unexpected"),
        (_set("joint_names", ["x", "x"]), "joint_names"),
        (_set("control_period_s", -0.02), "control_period_s"),
        (_set("action_scale_in_graph", True), "action_scale_in_graph"),
        (lambda c: c["joint_pos_limits"][1].reverse(), "joint_pos_limits[1]"),
        (lambda c: c["velocity_limits"].pop(), "velocity_limits"),
        (lambda c: c["velocity_limits"].__setitem__(1, 0.0), "velocity_limits[1]"),
        (_wrong_term_scale, "observation_terms[2].scale"),
        (_set("recurrent", {"cell": "gru", "layers": 1, "hidden_size": 4}), "recurrent"),
        (_term_size, "inputs[0].shape"),
        (_term_and_input, "inputs[0].shape"),
        (lambda c: c["outputs"][0].__setitem__("name", "mean"), "outputs[0].name"),
        (_set("graph_sha256", "0" * 64), "graph_sha256"),
        (_set("opset", 17), "opset"),
    ],
)  # fmt: skip
def test_tampered_contract_names_the_field(exported, tmp_path, edit, field):
    path = copy_of(exported("mlp"), tmp_path)
    rewrite(path, edit)
    with pytest.raises(ContractError) as error:
        load_policy(path)
    assert error.value.field == field
    assert f"'{field}'" in str(error.value) and str(path) in str(error.value)


@pytest.mark.parametrize(
    "edit", [lambda c: c.pop("velocity_limits"), _set("velocity_limits", None)]
)
def test_contract_without_velocity_limits_still_loads(exported, tmp_path, edit):
    # added to schema 1 later: files exported before it lack the field
    path = copy_of(exported("mlp"), tmp_path)
    rewrite(path, edit)
    assert load_policy(path).contract.velocity_limits is None


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="policy file not found"):
        load_policy(tmp_path / "nothing.onnx")


# ------------------------------------------------------------------ refused checkpoints


def test_checkpoint_of_another_schema_version_is_refused(checkpoint, tmp_path):
    state = load_checkpoint(checkpoint("mlp"))
    path = tmp_path / "old.pt"
    torch.save({**state, "checkpoint_version": 0}, path)
    with pytest.raises(ValueError, match="checkpoint_version is 0"):
        export_checkpoint(path, tmp_path / "out" / "policy.onnx")
    assert not (tmp_path / "out").exists()


def test_checkpoint_of_another_task_is_refused(checkpoint, tmp_path):
    output = tmp_path / "policy.onnx"
    with pytest.raises(ValueError, match="field 'task' is 'point-reach', not 'go2-flat'"):
        export_checkpoint(checkpoint("mlp"), output, task="go2-flat")
    state = load_checkpoint(checkpoint("mlp"))
    relabelled = save_checkpoint({**state, "task": "arm-reach"}, tmp_path / "relabelled.pt")
    with pytest.raises(ValueError, match="field 'obs_sizes.policy' is 9, but task 'arm-reach'"):
        export_checkpoint(relabelled, output)
    with pytest.raises(ValueError, match="unknown task"):
        export_checkpoint(save_checkpoint({**state, "task": "nope"}, tmp_path / "x.pt"), output)
    assert not output.exists() and not output.with_suffix(".json").exists()


def test_privileged_teacher_is_refused(checkpoint, tmp_path):
    with pytest.raises(ValueError, match="'config.model.actor_group' is 'critic'"):
        export_checkpoint(checkpoint("teacher"), tmp_path / "policy.onnx")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- writing, refusing


def test_failure_mid_write_leaves_no_file(checkpoint, tmp_path, monkeypatch):
    """A crash after the bytes are written but before the renames: nothing appears."""
    old = tmp_path / "policy.onnx"
    old.write_bytes(b"the previous model")

    def crash(fd):
        raise OSError("disk full")

    monkeypatch.setattr("sim2real.export.model_file.os.fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        export_checkpoint(checkpoint("mlp"), old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy.onnx"]
    assert old.read_bytes() == b"the previous model"


def test_write_atomically_is_all_or_nothing(tmp_path, monkeypatch):
    first, second = tmp_path / "a.onnx", tmp_path / "a.json"
    calls = []

    def fsync_fails_second_time(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError("no space left")

    monkeypatch.setattr("sim2real.export.model_file.os.fsync", fsync_fails_second_time)
    with pytest.raises(OSError):
        write_atomically({first: b"model", second: b"contract"})
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    write_atomically({first: b"model", second: b"contract"})
    assert first.read_bytes() == b"model" and second.read_bytes() == b"contract"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.onnx"]


def test_export_refuses_a_graph_that_fails_parity(checkpoint, tmp_path, monkeypatch):
    """A graph that drifts from the torch policy (here: a nudged bias) is never written."""
    original = exporter.export_graph

    def drifted(module, inputs, outputs):
        module = copy.deepcopy(module)
        with torch.no_grad():
            module.model.actor[-1].bias += 1e-3
        return original(module, inputs, outputs)

    monkeypatch.setattr(exporter, "export_graph", drifted)
    with pytest.raises(ParityError, match="nothing was written") as error:
        export_checkpoint(checkpoint("mlp"), tmp_path / "policy.onnx")
    assert error.value.report.max_abs_diff == pytest.approx(1e-3, rel=0.01)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------- CLI


def test_cli_export_then_inspect(checkpoint, tmp_path, capsys):
    output = tmp_path / "cli" / "policy.onnx"
    run = str(checkpoint("student"))
    assert main(["export", run, "-o", str(output), "--task", "point-reach"]) == 0
    printed = capsys.readouterr().out
    assert "random" in printed and "recorded" in printed and "wrote" in printed

    assert main(["inspect", str(output)]) == 0
    printed = capsys.readouterr().out
    for text in ("schema_version", "student", "joint_pos_rel", "ee_to_target", "obs_history",
                 "50 Hz", "valid"):  # fmt: skip
        assert text in printed, text

    assert main(["inspect", str(output), "--json"]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed) == json.loads(output.with_suffix(".json").read_text())


def test_cli_inspect_exits_2_on_an_invalid_file(exported, tmp_path, capsys):
    path = copy_of(exported("mlp"), tmp_path)
    rewrite(path, _set("kp", [1.0]))
    assert main(["inspect", str(path)]) == 2
    assert "'kp'" in capsys.readouterr().out
    path.write_bytes(path.read_bytes()[:100])
    assert main(["inspect", str(path)]) == 2
    assert "truncated" in capsys.readouterr().out
