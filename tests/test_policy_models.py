"""Normalization, MLPs, the actor-critic and its recurrent memory (sim2real.policies.models)."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from sim2real.policies.config import ModelConfig, build_config
from sim2real.policies.models import ActorCritic, Memory, mlp
from sim2real.policies.normalization import EmpiricalNormalization
from sim2real.policies.storage import RolloutStorage

# ----------------------------------------------------------------- normalization


def batches(seed=0, sizes=(1, 7, 64, 3, 250), dim=4):
    """Batches of different sizes and scales, far from zero mean and unit variance."""
    rng = np.random.default_rng(seed)
    scale, offset = rng.uniform(0.1, 20.0, dim), rng.uniform(-50, 50, dim)
    return [(rng.standard_normal((n, dim)) * scale + offset).astype(np.float32) for n in sizes]


def test_normalizer_matches_numpy_over_batches_of_different_sizes():
    data = batches()
    norm = EmpiricalNormalization(4)
    for i, batch in enumerate(data):
        norm.update(torch.from_numpy(batch))
        seen = np.concatenate(data[: i + 1]).astype(np.float64)
        np.testing.assert_allclose(norm.mean.numpy(), seen.mean(0), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(norm.var.numpy(), seen.var(0), rtol=1e-5)
        assert norm.count.item() == len(seen)
    # the first batch of a single sample has variance 0: eps keeps forward finite
    x = torch.from_numpy(data[2])
    expected = (x - norm.mean) / (norm.var.sqrt() + norm.eps)
    torch.testing.assert_close(norm(x), expected.clamp(-norm.clip, norm.clip))
    # over everything seen: mean 0, std std / (std + eps) (no clipping at 5 std here)
    seen = np.concatenate(data)
    normalized = norm(torch.from_numpy(seen)).numpy()
    std = seen.astype(np.float64).std(0)
    np.testing.assert_allclose(normalized.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(normalized.std(0), std / (std + norm.eps), rtol=1e-4)


def test_normalizer_accepts_sequences_clips_and_ignores_empty_batches():
    norm = EmpiricalNormalization(3, clip=2.0)
    x = torch.randn(5, 6, 3, generator=torch.Generator().manual_seed(0))
    norm.update(x)  # (T, B, D) is flattened to (T * B, D)
    torch.testing.assert_close(norm.mean, x.reshape(-1, 3).double().mean(0).float())
    assert norm.count.item() == 30
    before = {k: v.clone() for k, v in norm.state_dict().items()}
    norm.update(torch.zeros(0, 3))
    for key, value in norm.state_dict().items():
        torch.testing.assert_close(value, before[key])
    far = torch.full((2, 3), 1e6)
    torch.testing.assert_close(norm(far), torch.full((2, 3), 2.0))
    torch.testing.assert_close(norm(-far), torch.full((2, 3), -2.0))


def test_normalizer_state_dict_round_trip():
    data = batches(seed=1)
    norm = EmpiricalNormalization(4)
    for batch in data[:3]:
        norm.update(torch.from_numpy(batch))
    state = norm.state_dict()
    assert set(state) == {"mean", "var", "count"}
    assert state["count"].dtype == torch.float64
    restored = EmpiricalNormalization(4)
    restored.load_state_dict(state)
    x = torch.from_numpy(data[4])
    torch.testing.assert_close(restored(x), norm(x))
    # the count came back too: later updates weigh the old statistics correctly
    for batch in data[3:]:
        norm.update(torch.from_numpy(batch))
        restored.update(torch.from_numpy(batch))
    torch.testing.assert_close(restored.mean, norm.mean)
    torch.testing.assert_close(restored.var, norm.var)
    np.testing.assert_allclose(
        restored.mean.numpy(), np.concatenate(data).astype(np.float64).mean(0), rtol=1e-5
    )


def test_normalizer_reducer_sums_the_moments_of_every_process():
    mine, other = batches(seed=2, sizes=(10,)), batches(seed=3, sizes=(30,))
    # what another process would contribute: count, sum, sum of squares
    x = torch.from_numpy(other[0]).double()
    others = torch.cat([x.new_tensor([x.shape[0]]), x.sum(0), (x * x).sum(0)])
    calls = []

    def reducer(moments):
        calls.append(moments.clone())
        return moments + others

    norm = EmpiricalNormalization(4)
    norm.reducer = reducer
    norm.update(torch.from_numpy(mine[0]))
    assert len(calls) == 1
    assert calls[0].shape == (1 + 2 * 4,) and calls[0][0].item() == 10
    both = np.concatenate([mine[0], other[0]]).astype(np.float64)
    np.testing.assert_allclose(norm.mean.numpy(), both.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(norm.var.numpy(), both.var(0), rtol=1e-5)
    assert norm.count.item() == 40


# ------------------------------------------------------------------------- mlp


def test_mlp_layer_sizes_and_activations():
    net = mlp(5, [8, 4], 3, "tanh")
    kinds = [type(m) for m in net]
    assert kinds == [nn.Linear, nn.Tanh, nn.Linear, nn.Tanh, nn.Linear]
    shapes = [(m.in_features, m.out_features) for m in net if isinstance(m, nn.Linear)]
    assert shapes == [(5, 8), (8, 4), (4, 3)]
    assert net(torch.zeros(2, 7, 5)).shape == (2, 7, 3)
    assert [type(m) for m in mlp(5, [], 3, "relu")] == [nn.Linear]
    assert isinstance(mlp(2, [3], 1, "elu")[1], nn.ELU)
    assert isinstance(mlp(2, [3], 1, "relu")[1], nn.ReLU)


def test_mlp_unknown_activation_is_an_error_naming_it():
    with pytest.raises(ValueError, match="'swish'.*elu"):
        mlp(2, [3], 1, "swish")


# ----------------------------------------------------------------- actor-critic


def config(**changes) -> ModelConfig:
    base = ModelConfig(actor_hidden=[16, 16], critic_hidden=[16], rnn_hidden=8)
    return dataclasses.replace(base, **changes)


def test_actor_critic_initial_std_and_shapes():
    torch.manual_seed(0)
    model = ActorCritic(6, 9, 3, config(init_noise_std=0.5))
    torch.testing.assert_close(model.std, torch.full((3,), 0.5))
    assert model.log_std.requires_grad
    obs, critic = torch.randn(10, 6), torch.randn(10, 9)
    mean, state = model.action_mean(obs)
    value, _ = model.value(critic)
    assert state is None and model.initial_state(10) is None
    assert mean.shape == (10, 3) and value.shape == (10,)
    # the small last layer: the initial policy is centred on the default pose
    assert mean.abs().max() < 0.1
    dist = model.distribution(mean)
    actions = dist.sample()
    log_prob = dist.log_prob(actions).sum(-1)
    assert log_prob.shape == (10,)
    expected = (
        -((actions - mean) ** 2) / (2 * 0.25) - math.log(0.5) - 0.5 * math.log(2 * math.pi)
    ).sum(-1)
    torch.testing.assert_close(log_prob, expected)
    assert dist.stddev.shape == (10, 3)
    # asymmetric: the critic takes the 9 privileged features; the actor cannot
    with pytest.raises(RuntimeError):
        model.value(obs)


def test_actor_critic_normalizers():
    model = ActorCritic(4, 5, 2, config())
    assert isinstance(model.actor_normalizer, EmpiricalNormalization)
    model.update_normalizers(torch.full((3, 4), 2.0), torch.full((3, 5), -1.0))
    torch.testing.assert_close(model.actor_normalizer.mean, torch.full((4,), 2.0))
    torch.testing.assert_close(model.critic_normalizer.mean, torch.full((5,), -1.0))
    # the statistics travel in the state dict (checkpoints, export)
    assert "actor_normalizer.mean" in model.state_dict()
    plain = ActorCritic(4, 5, 2, config(normalize_obs=False))
    assert isinstance(plain.actor_normalizer, nn.Identity)
    plain.update_normalizers(torch.ones(3, 4), torch.ones(3, 5))  # a no-op
    assert not any("normalizer" in key for key in plain.state_dict())


def test_memory_kinds_and_initial_states():
    with pytest.raises(ValueError, match="'rnn'"):
        Memory("rnn", 3, 4, 1)
    assert Memory("gru", 3, 4, 2).initial_state(5).shape == (2, 5, 4)
    assert Memory("lstm", 3, 4, 2).initial_state(5).shape == (4, 5, 4)
    model = ActorCritic(3, 4, 2, config(recurrent="lstm", rnn_layers=2))
    actor_state, critic_state = model.initial_state(6)
    assert actor_state.shape == critic_state.shape == (4, 6, 8)
    assert model.actor[0].in_features == model.critic[0].in_features == 8


# -------------------------------------------------------------------- recurrent

T, B, D_ACTOR, D_CRITIC = 7, 4, 3, 5


def recurrent_model(kind: str, layers: int = 2) -> ActorCritic:
    torch.manual_seed(0)
    model = ActorCritic(D_ACTOR, D_CRITIC, 2, config(recurrent=kind, rnn_layers=layers))
    # non-trivial normalization, so it is part of what is replayed
    gen = torch.Generator().manual_seed(9)
    model.update_normalizers(
        torch.randn(50, D_ACTOR, generator=gen) * 3 + 1, torch.randn(50, D_CRITIC, generator=gen)
    )
    # a last actor layer of normal size, so the memory visibly moves the action
    nn.init.orthogonal_(model.actor[-1].weight)
    return model


def sequence(seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    obs = torch.randn(T, B, D_ACTOR, generator=gen)
    critic = torch.randn(T, B, D_CRITIC, generator=gen)
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[0, 0] = starts[3, 1] = starts[1, 2] = starts[5, 2] = True  # env 3 never restarts
    return obs, critic, starts


def random_state(model, seed=2):
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(s.shape, generator=gen) for s in model.initial_state(B))


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_recurrent_step_by_step_equals_whole_sequence(kind):
    model = recurrent_model(kind)
    obs, critic, starts = sequence()
    actor_state, critic_state = random_state(model)
    with torch.no_grad():
        means, last_actor = model.action_mean(obs, actor_state, starts)
        values, last_critic = model.value(critic, critic_state, starts)
        assert means.shape == (T, B, 2) and values.shape == (T, B)
        a, c = actor_state, critic_state
        for t in range(T):
            mean, a = model.action_mean(obs[t : t + 1], a, starts[t : t + 1])
            value, c = model.value(critic[t : t + 1], c, starts[t : t + 1])
            torch.testing.assert_close(mean[0], means[t], rtol=0, atol=1e-6)
            torch.testing.assert_close(value[0], values[t], rtol=0, atol=1e-6)
    torch.testing.assert_close(a, last_actor, rtol=0, atol=1e-6)
    torch.testing.assert_close(c, last_critic, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_recurrent_memory_matches_plain_rnn_over_each_episode(kind):
    """Reference: torch's RNN over each episode segment in one call, from zeros at a start."""
    model = recurrent_model(kind)
    obs, _, starts = sequence()
    state, _ = random_state(model)
    memory = model.actor_memory
    x = model.actor_normalizer(obs)
    with torch.no_grad():
        out, _ = memory(x, state, starts)
        for b in range(B):
            bounds = [0, *[t for t in range(1, T) if starts[t, b]], T]
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
                h0 = state[:, b : b + 1]
                if starts[lo, b]:
                    h0 = torch.zeros_like(h0)
                h0 = tuple(h0.chunk(2)) if kind == "lstm" else h0
                expected, _ = memory.rnn(x[lo:hi, b : b + 1], h0)
                torch.testing.assert_close(out[lo:hi, b], expected[:, 0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_a_start_makes_the_output_independent_of_the_past(kind):
    model = recurrent_model(kind)
    obs, critic, _ = sequence()
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[3] = True  # every env starts a new episode at t = 3
    state = random_state(model)
    other_obs, other_critic = obs.clone(), critic.clone()
    other_obs[:3] += 5 * torch.randn(3, B, D_ACTOR)
    other_critic[:3] -= 5.0
    other_state = random_state(model, seed=7)
    with torch.no_grad():
        m1, _ = model.action_mean(obs, state[0], starts)
        m2, _ = model.action_mean(other_obs, other_state[0], starts)
        v1, _ = model.value(critic, state[1], starts)
        v2, _ = model.value(other_critic, other_state[1], starts)
        torch.testing.assert_close(m1[3:], m2[3:], rtol=0, atol=1e-6)
        torch.testing.assert_close(v1[3:], v2[3:], rtol=0, atol=1e-6)
        assert (m1[:3] - m2[:3]).abs().max() > 1e-3
        # without the start the past leaks through: the memory carries information
        none = torch.zeros_like(starts)
        m1, _ = model.action_mean(obs, state[0], none)
        m2, _ = model.action_mean(other_obs, other_state[0], none)
        assert (m1[3:] - m2[3:]).abs().max() > 1e-3
        # a start at t = 0 discards the given state
        first = torch.zeros_like(starts)
        first[0] = True
        m1, _ = model.action_mean(obs, state[0], first)
        m2, _ = model.action_mean(obs, other_state[0], first)
        torch.testing.assert_close(m1, m2, rtol=0, atol=1e-6)


def fill_by_hand(model, storage, steps, seed=3):
    """A rollout in the trainer's manner: T = 1 calls, state carried, zeroed at starts."""
    gen = torch.Generator().manual_seed(seed)
    n = storage.num_envs
    state = tuple(torch.randn(s.shape, generator=gen) for s in model.initial_state(n))
    storage.set_initial_state(state)
    starts = torch.zeros(n, dtype=torch.bool)  # the rollout continues earlier episodes
    with torch.inference_mode():
        for _ in range(steps):
            obs, critic = (
                torch.randn(n, D_ACTOR, generator=gen),
                torch.randn(n, D_CRITIC, generator=gen),
            )
            mean, actor_state = model.action_mean(obs[None], state[0], starts[None])
            value, critic_state = model.value(critic[None], state[1], starts[None])
            dist = model.distribution(mean[0])
            actions = dist.sample()
            dones = torch.rand(n, generator=gen) < 0.25
            log_prob = dist.log_prob(actions).sum(-1)
            storage.add(
                obs, critic, actions, log_prob, mean[0], dist.stddev, value[0],
                torch.randn(n), dones, starts,
            )  # fmt: skip
            state, starts = (actor_state, critic_state), dones
    return storage


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_recurrent_minibatches_replay_the_stored_log_probs(kind):
    model = recurrent_model(kind)
    n, steps = 6, 9
    storage = RolloutStorage(steps, n, D_ACTOR, D_CRITIC, 2, model.initial_state(n))
    fill_by_hand(model, storage, steps)
    assert storage.starts[1:].any()  # episodes start inside the rollout
    storage.compute_returns(torch.zeros(n), 0.99, 0.95)
    seen = []
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for batch in storage.minibatches(num_minibatches=3, num_epochs=2, generator=gen):
            assert batch.actor_obs.shape == (steps, 2, D_ACTOR)
            assert batch.starts.shape == (steps, 2) and batch.actor_state.shape[1] == 2
            mean, _ = model.action_mean(batch.actor_obs, batch.actor_state, batch.starts)
            value, _ = model.value(batch.critic_obs, batch.critic_state, batch.starts)
            log_prob = model.distribution(mean).log_prob(batch.actions).sum(-1)
            torch.testing.assert_close(log_prob, batch.log_probs, rtol=0, atol=1e-5)
            torch.testing.assert_close(value, batch.values, rtol=0, atol=1e-5)
            torch.testing.assert_close(mean, batch.means, rtol=0, atol=1e-6)
            # ignoring the starts (or the initial state) would not replay the rollout
            wrong, _ = model.action_mean(
                batch.actor_obs, batch.actor_state, torch.zeros_like(batch.starts)
            )
            assert (wrong - mean).abs().max() > 1e-4
            zero = torch.zeros_like(batch.actor_state)
            wrong, _ = model.action_mean(batch.actor_obs, zero, batch.starts)
            assert (wrong - mean).abs().max() > 1e-4
            seen.append(batch)
    assert len(seen) == 6
    # every env sequence is served once per epoch, each whole with its own state
    for epoch in (seen[:3], seen[3:]):
        obs = torch.cat([b.actor_obs for b in epoch], dim=1)
        order = [
            next(i for i in range(n) if torch.equal(storage.actor_obs[:, i], obs[:, j]))
            for j in range(n)
        ]
        assert sorted(order) == list(range(n))
        states = torch.cat([b.actor_state for b in epoch], dim=1)
        torch.testing.assert_close(states, storage.initial_state[0][:, order])


def test_recurrent_trainer_rollout_is_replayed_exactly(tmp_path):
    """The Trainer's own rollouts (episode ends inside, carried state) replay exactly."""
    from sim2real.policies.runner import Trainer

    overrides = [
        "num_envs=6",
        "nthread=1",
        "ppo.num_steps=10",
        "model.recurrent=gru",
        "model.rnn_hidden=8",
        "tensorboard=false",
        f"log_dir={tmp_path}",
    ]
    trainer = Trainer(build_config("point-reach", overrides=overrides), run_dir=tmp_path)
    env = trainer.env
    env.max_episode_length = 4
    env.episode_length[:] = np.arange(6) % 4  # staggered time-outs
    nn.init.orthogonal_(trainer.model.actor[-1].weight)
    model, storage = trainer.model, trainer.storage
    for rollout in range(2):  # the second starts from the state the first left behind
        trainer.collect()
        assert storage.starts[1:].any()
        if rollout == 1:
            assert storage.initial_state[0].abs().max() > 0
            assert not storage.starts[0].all()
        gen = torch.Generator().manual_seed(rollout)
        with torch.no_grad():
            for batch in storage.minibatches(2, 1, gen):
                mean, _ = model.action_mean(batch.actor_obs, batch.actor_state, batch.starts)
                value, _ = model.value(batch.critic_obs, batch.critic_state, batch.starts)
                log_prob = model.distribution(mean).log_prob(batch.actions).sum(-1)
                torch.testing.assert_close(log_prob, batch.log_probs, rtol=0, atol=1e-5)
                torch.testing.assert_close(value, batch.values, rtol=0, atol=1e-5)
        model.update_normalizers(storage.actor_obs, storage.critic_obs)
        storage.clear()
