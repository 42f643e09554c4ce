"""Data-parallel PPO: 2 CPU ranks (gloo) take the step 1 process takes on the whole batch.

``test_two_ranks_match_one_process`` spawns 2 processes once; each holds half (by env) of
a fixed hand-made rollout and runs the scenarios of ``_worker``. The parent computes the
same updates in one process on the whole rollout and compares. The same 2 processes also
train and resume a ``Trainer`` on ``point-reach`` (``test_trainer_ranks_stay_one_model``).
``test_torchrun_train`` runs the real launcher, ``torchrun --standalone --nproc_per_node=2
-m sim2real train``; ``test_torchrun_resume`` (slow) adds ``--resume``.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp

from sim2real.policies.config import ModelConfig, PPOConfig
from sim2real.policies.distributed import Distributed
from sim2real.policies.models import ActorCritic
from sim2real.policies.ppo import PPO
from sim2real.policies.storage import RolloutStorage

WORLD = 2
T, N = 6, 8  # the whole rollout: N envs, N / WORLD per rank
ACTOR_OBS, CRITIC_OBS, A = 5, 7, 3
LEARNING_RATE = 1e-3
TOL = {"atol": 1e-5, "rtol": 1e-5}
SPAWN_TIMEOUT_S = 120
TRAINER_SET = ["num_envs=4", "ppo.num_steps=4", "max_iterations=1", "tensorboard=false"]
TRAINER_SET += ["nthread=1", "run_name=run"]
#: the rollout tensors split by env
FIELDS = ("actor_obs", "critic_obs", "actions", "log_probs", "means", "stds", "values")
FIELDS += ("returns", "advantages", "starts")


def model_config(recurrent: str) -> ModelConfig:
    return ModelConfig(actor_hidden=[16, 16], critic_hidden=[16], recurrent=recurrent, rnn_hidden=8)


def ppo_config() -> PPOConfig:
    # one minibatch: each epoch is one step on the whole (all ranks') rollout
    return PPOConfig(
        num_steps=T,
        num_epochs=4,
        num_minibatches=1,
        schedule="adaptive",
        learning_rate=LEARNING_RATE,
        desired_kl=0.01,
        entropy_coef=0.01,
    )


def make_model(recurrent: str, seed: int = 0) -> ActorCritic:
    torch.manual_seed(seed)
    return ActorCritic(ACTOR_OBS, CRITIC_OBS, A, model_config(recurrent))


def warmup_obs() -> tuple[torch.Tensor, torch.Tensor]:
    """(T, N, D) observations merged into the normalizers before the update."""
    g = torch.Generator().manual_seed(7)
    actor = torch.randn(T, N, ACTOR_OBS, generator=g) * 3.0 + 1.0
    critic = torch.randn(T, N, CRITIC_OBS, generator=g) * 0.5 - 2.0
    return actor, critic


@torch.no_grad()
def full_rollout(recurrent: str) -> RolloutStorage:
    """The fixed rollout of all N envs, close to the initial policy (small KL)."""
    model = make_model(recurrent)
    model.update_normalizers(*warmup_obs())
    g = torch.Generator().manual_seed(1234)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)

    storage = RolloutStorage(T, N, ACTOR_OBS, CRITIC_OBS, A, model.initial_state(N))
    storage.actor_obs = randn(T, N, ACTOR_OBS) * 3.0 + 1.0
    storage.critic_obs = randn(T, N, CRITIC_OBS) * 0.5 - 2.0
    storage.starts = torch.rand(T, N, generator=g) < 0.2
    storage.starts[0] = True
    actor_state = critic_state = None
    if storage.initial_state is not None:
        storage.initial_state = tuple(0.1 * randn(*s.shape) for s in storage.initial_state)
        actor_state, critic_state = storage.initial_state
    mean, _ = model.action_mean(storage.actor_obs, actor_state, storage.starts)
    value, _ = model.value(storage.critic_obs, critic_state, storage.starts)
    storage.means = mean + 0.02 * randn(T, N, A)
    storage.stds = model.std.expand(T, N, A) * torch.exp(0.02 * randn(T, N, A))
    storage.actions = storage.means + storage.stds * randn(T, N, A)
    old = torch.distributions.Normal(storage.means, storage.stds)
    storage.log_probs = old.log_prob(storage.actions).sum(-1)
    storage.values = value + 0.1 * randn(T, N)
    storage.returns = storage.values + randn(T, N)
    storage.advantages = 2.0 * randn(T, N) + 0.3
    storage.step = T
    return storage


def env_share(storage: RolloutStorage, rank: int) -> RolloutStorage:
    """Rank ``rank``'s envs of the whole rollout."""
    n = N // WORLD
    envs = slice(rank * n, (rank + 1) * n)
    state = storage.initial_state
    if state is not None:
        state = tuple(s[:, envs].clone() for s in state)
    part = RolloutStorage(T, n, ACTOR_OBS, CRITIC_OBS, A, state)
    part.set_initial_state(state)
    for name in FIELDS:
        setattr(part, name, getattr(storage, name)[:, envs].clone())
    part.step = T
    return part


def train_step(recurrent: str, dist: Distributed, rank: int | None) -> dict:
    """Warm up the normalizers, one PPO update, merge the rollout into the normalizers.

    ``rank`` None: the whole rollout in one process; otherwise that rank's share.
    """
    model = make_model(recurrent)
    if dist.world_size > 1:
        for normalizer in (model.actor_normalizer, model.critic_normalizer):
            normalizer.reducer = dist.sum
    dist.broadcast(model)
    storage = full_rollout(recurrent)
    warm_actor, warm_critic = warmup_obs()
    if rank is not None:
        storage = env_share(storage, rank)
        n = N // WORLD
        warm_actor = warm_actor[:, rank * n : (rank + 1) * n]
        warm_critic = warm_critic[:, rank * n : (rank + 1) * n]
    model.update_normalizers(warm_actor, warm_critic)
    ppo = PPO(model, ppo_config(), dist, seed=3)
    stats = ppo.update(storage)
    model.update_normalizers(storage.actor_obs, storage.critic_obs)
    return {"state": model.state_dict(), "stats": stats, "lr": ppo.learning_rate}


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    torch_dist.init_process_group(
        "gloo",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=WORLD,
        timeout=timedelta(seconds=60),
    )
    dist = Distributed(torch_dist.get_rank(), torch_dist.get_world_size())
    results = {kind: train_step(kind, dist, rank) for kind in ("none", "gru")}
    # rank 1 starts from other parameters and normalizer statistics: broadcast fixes both
    model = make_model("none", seed=rank)
    model.actor_normalizer.update(torch.randn(10, ACTOR_OBS) + rank)
    results["before_broadcast"] = {k: v.clone() for k, v in model.state_dict().items()}
    dist.broadcast(model)
    results["after_broadcast"] = model.state_dict()
    # a parameter only rank 0's loss uses: rank 1 contributes a zero gradient
    layer = torch.nn.Linear(2, 1)
    layer.weight.grad = torch.full_like(layer.weight, 2.0) if rank == 0 else None
    dist.average_gradients(layer)
    results["grad_used_by_rank0"] = layer.weight.grad.clone()
    results["grad_used_by_none"] = layer.bias.grad
    results["trainer"] = trainer_runs(dist, Path(out_dir))
    torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    dist.close()


def trainer_runs(dist: Distributed, out_dir: Path) -> dict:
    """The Trainer's wiring on point-reach: 1 iteration, then resumed for 1 more."""
    from rich.console import Console

    from sim2real.policies.config import build_config
    from sim2real.policies.runner import Trainer

    config = build_config("point-reach", overrides=[*TRAINER_SET, f"log_dir={out_dir}"])
    console = Console(file=io.StringIO())
    trainer = Trainer(config, run_dir=out_dir / "run", dist=dist, console=console)
    trainer.learn()
    first = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    dist.barrier()  # rank 0 wrote the checkpoint
    resumed = Trainer.resume(out_dir / "run", {"max_iterations": 2}, dist=dist, console=console)
    rng = torch.get_rng_state()
    resumed.learn()
    return {"first": first, "rng": rng, "second": resumed.model.state_dict()}


def spawn(tmp_path: Path) -> list[dict]:
    """Run ``_worker`` on WORLD processes; fail (never hang) if they do not finish."""
    context = mp.spawn(
        _worker, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=WORLD, join=False
    )
    deadline = time.monotonic() + SPAWN_TIMEOUT_S
    while not context.join(timeout=1.0):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the {WORLD} ranks did not finish within {SPAWN_TIMEOUT_S} s")
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    return spawn(tmp_path_factory.mktemp("dist"))


@pytest.mark.parametrize("recurrent", ["none", "gru"])
def test_two_ranks_match_one_process(ranks, recurrent):
    one = train_step(recurrent, Distributed(), rank=None)
    first = ranks[0][recurrent]
    # the adaptive schedule moved the learning rate, identically
    assert one["lr"] != LEARNING_RATE
    assert first["lr"] == pytest.approx(one["lr"], rel=1e-9)
    assert first["stats"]["policy/kl"] == pytest.approx(one["stats"]["policy/kl"], rel=1e-4)
    assert first["state"].keys() == one["state"].keys()
    for name, value in one["state"].items():
        torch.testing.assert_close(first["state"][name], value, **TOL, msg=name)
    # normalizers saw every rank's observations: the whole batch, twice (warm-up, rollout)
    assert first["state"]["actor_normalizer.count"].item() == 2 * T * N
    # and the ranks are one model, bit for bit
    for other in ranks[1:]:
        assert other[recurrent]["lr"] == first["lr"]
        for name, value in first["state"].items():
            assert torch.equal(other[recurrent]["state"][name], value), name


def test_broadcast_makes_rank_1_equal_to_rank_0(ranks):
    before0, before1 = ranks[0]["before_broadcast"], ranks[1]["before_broadcast"]
    assert not torch.equal(before0["actor.0.weight"], before1["actor.0.weight"])
    assert not torch.equal(before0["actor_normalizer.mean"], before1["actor_normalizer.mean"])
    for name, value in before0.items():
        assert torch.equal(ranks[0]["after_broadcast"][name], value), name
        assert torch.equal(ranks[1]["after_broadcast"][name], value), name


def test_a_gradient_one_rank_lacks_counts_as_zero(ranks):
    for result in ranks:
        torch.testing.assert_close(result["grad_used_by_rank0"], torch.full((1, 2), 1.0))
        assert result["grad_used_by_none"] is None


def test_trainer_ranks_stay_one_model(ranks):
    first, second = (r["trainer"] for r in ranks)
    for key in ("first", "second"):
        for name, value in first[key].items():
            assert torch.equal(second[key][name], value), f"{key}: {name}"
    # 2 ranks x 4 envs x 4 steps per iteration went into the normalizers
    assert first["first"]["actor_normalizer.count"].item() == 2 * 4 * 4
    assert first["second"]["actor_normalizer.count"].item() == 2 * 2 * 4 * 4
    # after a resume the ranks do not replay one stream of action noise
    assert not torch.equal(first["rng"], second["rng"])


def test_single_process_reductions_are_identity():
    dist = Distributed()
    x = torch.tensor([1.0, -2.0])
    assert torch.equal(dist.sum(x), x) and torch.equal(dist.mean(x), x)
    assert dist.sum(x) is not x
    assert dist.is_main and dist.world_size == 1


# ---------------------------------------------------------------------- torchrun


def torchrun(args: list[str], cwd: Path, timeout: float = 150.0) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node=2 -m sim2real …``, killed whole on timeout."""
    launcher = Path(sys.executable).with_name("torchrun")
    command = [str(launcher)]
    if not launcher.exists():  # the same entry point
        command = [sys.executable, "-m", "torch.distributed.run"]
    command += ["--standalone", f"--nproc_per_node={WORLD}", "-m", "sim2real", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    # its own session, so a timeout kills torchrun and both workers, not torchrun alone
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"torchrun did not finish within {timeout} s:\n{output}")
    return subprocess.CompletedProcess(command, process.returncode, output)


TINY = ["num_envs=8", "ppo.num_steps=4", "tensorboard=false", "nthread=1", "save_interval=1"]


def test_torchrun_train(tmp_path):
    from sim2real.policies.checkpoint import load_actor_critic

    log_dir = tmp_path / "runs"
    # no run_name: each rank would name its own timestamped folder, so one folder proves
    # that only rank 0 wrote
    args = ["train", "point-reach", "--set", *TINY, "max_iterations=2", f"log_dir={log_dir}"]
    result = torchrun(args, tmp_path)
    assert result.returncode == 0, result.stdout
    assert result.stdout.count("2 process(es) × 8 envs") == 1, result.stdout
    runs = list(log_dir.iterdir())
    assert len(runs) == 1, runs
    run = runs[0]
    assert sorted(p.name for p in run.iterdir()) == [
        "config.yaml",
        "metrics.jsonl",
        "model_1.pt",
        "model_2.pt",
    ]
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["iteration"] for line in lines] == [1, 2]
    assert [line["perf/total_steps"] for line in lines] == [WORLD * 8 * 4, WORLD * 8 * 4 * 2]
    config, model, state = load_actor_critic(run)
    assert config.task == "point-reach" and config.num_envs == 8
    assert state["iteration"] == 2
    # the normalizers merged both ranks' observations of both iterations
    assert model.actor_normalizer.count.item() == WORLD * 8 * 4 * 2
    assert torch.isfinite(model.action_mean(torch.zeros(1, model.actor_obs))[0]).all()


@pytest.mark.slow
def test_torchrun_resume(tmp_path):
    from sim2real.policies.checkpoint import load_checkpoint

    log_dir = tmp_path / "runs"
    args = ["train", "point-reach", "--set", *TINY, f"log_dir={log_dir}", "run_name=run"]
    result = torchrun([*args, "max_iterations=1"], tmp_path)
    assert result.returncode == 0, result.stdout
    run = log_dir / "run"
    result = torchrun(
        ["train", "point-reach", "--resume", str(run), "--set", "max_iterations=2"], tmp_path
    )
    assert result.returncode == 0, result.stdout
    assert load_checkpoint(run)["iteration"] == 2
    assert load_checkpoint(run / "model_2.pt")["model"]["actor_normalizer.count"].item() == (
        WORLD * 8 * 4 * 2
    )
