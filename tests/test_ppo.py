"""PPO (sim2real.policies.ppo) and its rollout storage on small hand-made rollouts."""

import copy
import dataclasses
import math

import pytest
import torch
from torch import nn

from sim2real.policies.config import ModelConfig, PPOConfig
from sim2real.policies.models import ActorCritic
from sim2real.policies.ppo import MAX_LR, MIN_LR, PPO
from sim2real.policies.storage import Minibatch, RolloutStorage

D, A = 3, 2


def model_config(**changes) -> ModelConfig:
    return dataclasses.replace(
        ModelConfig(actor_hidden=[16], critic_hidden=[16], normalize_obs=False), **changes
    )


def ppo_config(**changes) -> PPOConfig:
    return dataclasses.replace(PPOConfig(num_epochs=4, num_minibatches=4), **changes)


def make_model(seed=0, **changes) -> ActorCritic:
    torch.manual_seed(seed)
    return ActorCritic(D, D, A, model_config(**changes))


def fill(model, T=8, N=16, seed=0, mean_shift=0.0, std_scale=1.0, reward=None) -> RolloutStorage:
    """A rollout through ``model`` whose reward is the first action: a > 0 is good.

    ``mean_shift``/``std_scale`` fake a collecting policy other than ``model``;
    ``reward(obs, actions)`` replaces the reward.
    """
    gen = torch.Generator().manual_seed(seed)
    storage = RolloutStorage(T, N, D, D, A)
    with torch.no_grad():
        for _ in range(T):
            obs = torch.randn(N, D, generator=gen)
            mean = model.action_mean(obs)[0] + mean_shift
            std = model.std.expand_as(mean) * std_scale
            dist = torch.distributions.Normal(mean, std)
            actions = mean + std * torch.randn(N, A, generator=gen)
            storage.add(
                obs, obs, actions, dist.log_prob(actions).sum(-1), mean, std,
                model.value(obs)[0], actions[:, 0] if reward is None else reward(obs, actions),
                torch.zeros(N, dtype=torch.bool),
                torch.zeros(N, dtype=torch.bool),
            )  # fmt: skip
    storage.compute_returns(torch.zeros(N), gamma=0.0, lam=0.95)  # advantage = r - V
    return storage


def whole(storage: RolloutStorage) -> Minibatch:
    """The whole rollout as one minibatch."""
    return next(storage.minibatches(1, 1, torch.Generator().manual_seed(0)))


# ------------------------------------------------------------------ the update


def test_update_moves_the_policy_towards_positive_advantage_actions():
    model = make_model()
    storage = fill(model)
    before = copy.deepcopy(model)
    ppo = PPO(model, ppo_config(learning_rate=3e-3, schedule="fixed", entropy_coef=0.0))
    stats = ppo.update(storage)
    batch = whole(storage)  # advantages normalized by the update
    with torch.no_grad():
        old_mean = before.action_mean(batch.actor_obs)[0]
        new_mean = model.action_mean(batch.actor_obs)[0]
        # the rewarded action moved up in every state, the other one did not move much
        shift = new_mean - old_mean
        assert (shift[:, 0] > 0).float().mean() > 0.9
        assert shift[:, 0].mean() > 5 * shift[:, 1].abs().mean()
        # the advantage-weighted log-likelihood of the taken actions went up
        old_lp = before.distribution(old_mean).log_prob(batch.actions).sum(-1)
        new_lp = model.distribution(new_mean).log_prob(batch.actions).sum(-1)
        assert (batch.advantages * (new_lp - old_lp)).mean() > 0
        # and the PPO loss of the whole rollout went down
        old_loss, _ = PPO(before, ppo.config).loss(batch)
        new_loss, _ = ppo.loss(batch)
    assert new_loss < old_loss - 0.05
    expected = {
        "loss/surrogate",
        "loss/value",
        "loss/entropy",
        "policy/kl",
        "policy/clip_fraction",
        "policy/learning_rate",
        "policy/action_std",
    }
    assert set(stats) == expected
    assert all(math.isfinite(v) for v in stats.values())
    assert stats["policy/action_std"] == pytest.approx(model.std.mean().item())
    assert stats["policy/kl"] > 0


def test_update_fits_the_value_to_the_returns():
    model = make_model()
    storage = fill(model, reward=lambda obs, actions: 2 * obs[:, 0] + 1)  # predictable
    batch = whole(storage)
    with torch.no_grad():
        before = (model.value(batch.critic_obs)[0] - batch.returns).pow(2).mean()
    cfg = ppo_config(num_epochs=8, schedule="fixed", learning_rate=1e-2, clipped_value_loss=False)
    PPO(model, cfg).update(storage)
    with torch.no_grad():
        after = (model.value(batch.critic_obs)[0] - batch.returns).pow(2).mean()
    assert after < 0.5 * before


def test_the_update_changes_every_parameter_and_leaves_rewards_and_returns():
    model = make_model()
    storage = fill(model)
    returns, rewards = storage.returns.clone(), storage.rewards.clone()
    before = {k: v.clone() for k, v in model.named_parameters()}
    PPO(model, ppo_config(num_epochs=1)).update(storage)
    for name, value in model.named_parameters():
        assert not torch.equal(value, before[name]), name
    torch.testing.assert_close(storage.returns, returns)
    torch.testing.assert_close(storage.rewards, rewards)


# -------------------------------------------------------- the loss, by hand


def constant_model(value: float) -> ActorCritic:
    """One action; the mean action is 0, std 1 and the value ``value`` for every obs."""
    model = ActorCritic(D, D, 1, model_config())
    with torch.no_grad():
        for net in (model.actor, model.critic):
            for layer in net:
                if isinstance(layer, nn.Linear):
                    layer.weight.zero_()
                    layer.bias.zero_()
        model.critic[-1].bias.fill_(value)
        model.log_std.zero_()
    return model


def hand_batch(**changes) -> Minibatch:
    actions = torch.tensor([[0.3], [-1.0], [0.5], [2.0]])
    ratios = torch.tensor([0.5, 1.0, 1.5, 1.1])
    new_log_probs = (-0.5 * actions**2 - 0.5 * math.log(2 * math.pi)).sum(-1)
    fields = dict(
        actor_obs=torch.randn(4, D),
        critic_obs=torch.randn(4, D),
        actions=actions,
        # log pi_old = log pi_new - log ratio: the ratios above
        log_probs=new_log_probs - ratios.log(),
        means=torch.zeros(4, 1),
        stds=torch.ones(4, 1),
        values=torch.tensor([0.0, 1.0, 0.9, 2.0]),
        returns=torch.tensor([1.0, 0.0, 1.0, 1.05]),
        advantages=torch.tensor([1.0, -1.0, 2.0, -3.0]),
    )
    fields.update(changes)
    return Minibatch(**fields)


def test_loss_matches_a_hand_computation():
    cfg = ppo_config(clip_param=0.2, value_loss_coef=0.5, entropy_coef=0.01)
    ppo = PPO(constant_model(1.0), cfg)
    loss, stats = ppo.loss(hand_batch())
    # surrogate, ratio r and advantage A per sample, clip 0.2:
    #   r=0.5 A= 1: min(0.5, 0.8*1)      =  0.5
    #   r=1.0 A=-1: min(-1, -1)          = -1.0
    #   r=1.5 A= 2: min(3.0, 1.2*2)      =  2.4
    #   r=1.1 A=-3: min(-3.3, -3.3)      = -3.3   -> loss = -mean = 0.35
    # value, new value c = 1, old v, return R, clipped to v ± 0.2:
    #   v=0.0 R=1.0: max((1-1)^2, (0.2-1)^2)      = 0.64
    #   v=1.0 R=0.0: max((1-0)^2, (1-0)^2)        = 1.0
    #   v=0.9 R=1.0: max(0, (1.0-1)^2)            = 0.0
    #   v=2.0 R=1.05: max(0.0025, (1.8-1.05)^2)   = 0.5625 -> mean 0.550625
    # entropy of N(0, 1): 0.5 * (1 + log 2 pi) = 1.4189385
    # loss = 0.35 + 0.5 * 0.550625 - 0.01 * 1.4189385 = 0.6111231
    assert stats["loss/surrogate"] == pytest.approx(0.35, abs=1e-6)
    assert stats["loss/value"] == pytest.approx(0.550625, abs=1e-6)
    assert stats["loss/entropy"] == pytest.approx(1.4189385, abs=1e-6)
    assert loss.item() == pytest.approx(0.6111231, abs=1e-6)
    assert stats["policy/clip_fraction"] == pytest.approx(0.5)  # r = 0.5 and 1.5
    assert stats["policy/kl"] == pytest.approx(0.0, abs=1e-7)
    # without clipping the value loss is the plain squared error
    plain = PPO(constant_model(1.0), dataclasses.replace(cfg, clipped_value_loss=False))
    _, stats = plain.loss(hand_batch())
    assert stats["loss/value"] == pytest.approx((0 + 1 + 0 + 0.0025) / 4, abs=1e-6)
    # the loss has gradients for the policy mean, std and the value
    loss.backward()
    assert ppo.model.log_std.grad is not None and ppo.model.critic[-1].bias.grad.abs() > 0


def test_loss_kl_of_the_gaussians():
    ppo = PPO(constant_model(0.0), ppo_config())
    # old mean 0.5 (new 0), same std 1: KL = 0.5^2 / 2
    _, stats = ppo.loss(hand_batch(means=torch.full((4, 1), 0.5)))
    assert stats["policy/kl"] == pytest.approx(0.125, abs=1e-6)
    # old std 2, new std 1, same mean: log(1/2) + 4/2 - 1/2
    _, stats = ppo.loss(hand_batch(stds=torch.full((4, 1), 2.0)))
    assert stats["policy/kl"] == pytest.approx(math.log(0.5) + 1.5, abs=1e-6)


# ------------------------------------------------------- adaptive learning rate


def test_adaptive_learning_rate_rules_and_bounds():
    ppo = PPO(make_model(), ppo_config(learning_rate=1e-3, desired_kl=0.01))
    ppo._adapt_learning_rate(0.05)  # > 2 x target: shrink
    assert ppo.learning_rate == pytest.approx(1e-3 / 1.5)
    ppo._adapt_learning_rate(0.001)  # < target / 2: grow
    assert ppo.learning_rate == pytest.approx(1e-3)
    for kl in (0.01, 0.006, 0.019, 0.0):  # within the band, or no movement yet: keep
        ppo._adapt_learning_rate(kl)
        assert ppo.learning_rate == pytest.approx(1e-3)
    for _ in range(40):
        ppo._adapt_learning_rate(1.0)
    assert ppo.learning_rate == MIN_LR
    for _ in range(40):
        ppo._adapt_learning_rate(1e-6)
    assert ppo.learning_rate == MAX_LR
    # what Adam uses is the same number
    assert all(g["lr"] == MAX_LR for g in ppo.optimizer.param_groups)


def test_adaptive_learning_rate_during_updates():
    # a rollout collected far from the current policy: large KL, the rate shrinks
    model = make_model()
    ppo = PPO(model, ppo_config(learning_rate=1e-3, desired_kl=0.01))
    stats = ppo.update(fill(model, mean_shift=1.0))
    assert stats["policy/kl"] > 0.5
    assert MIN_LR <= stats["policy/learning_rate"] < 1e-3 / 1.5**10
    assert ppo.optimizer.param_groups[0]["lr"] == ppo.learning_rate
    # tiny steps away from the collecting policy: small KL, the rate grows
    model = make_model()
    ppo = PPO(model, ppo_config(learning_rate=1e-5, desired_kl=0.01))
    stats = ppo.update(fill(model))
    assert stats["policy/kl"] < 0.005
    assert 1e-5 * 1.5**5 < ppo.learning_rate <= MAX_LR
    # a fixed schedule keeps it
    model = make_model()
    ppo = PPO(model, ppo_config(learning_rate=1e-3, schedule="fixed"))
    stats = ppo.update(fill(model, mean_shift=1.0))
    assert stats["policy/learning_rate"] == ppo.optimizer.param_groups[0]["lr"] == 1e-3


def test_unknown_schedule_is_an_error():
    with pytest.raises(ValueError, match="'cosine'"):
        PPO(make_model(), ppo_config(schedule="cosine"))


# ----------------------------------------------------------- gradient clipping


def grad_norms_seen(max_grad_norm: float) -> list[float]:
    model = make_model()
    ppo = PPO(model, ppo_config(max_grad_norm=max_grad_norm, num_epochs=2, schedule="fixed"))
    norms = []
    step = ppo.optimizer.step

    def recording_step(*args, **kwargs):
        grads = [p.grad.flatten() for p in model.parameters() if p.grad is not None]
        norms.append(torch.cat(grads).norm().item())
        return step(*args, **kwargs)

    ppo.optimizer.step = recording_step
    ppo.update(fill(model, mean_shift=0.5))
    assert len(norms) == 2 * 4
    return norms


def test_gradients_are_clipped_to_max_grad_norm():
    unclipped = grad_norms_seen(1e6)
    assert min(unclipped) > 0.05  # the gradients here are larger than the clip below
    clipped = grad_norms_seen(0.01)
    assert max(clipped) <= 0.01 * (1 + 1e-4)
    assert min(clipped) == pytest.approx(0.01, rel=1e-4)


# ------------------------------------------------------ advantage normalization


def test_advantage_normalization():
    ppo = PPO(make_model(), ppo_config())
    advantages = torch.randn(8, 16, generator=torch.Generator().manual_seed(0)) * 7 + 3
    normalized = ppo._normalized(advantages)
    assert normalized.dtype == torch.float32 and normalized.shape == (8, 16)
    assert normalized.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert normalized.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-5)
    # an affine map of the advantages (population std)
    expected = (advantages - advantages.mean()) / advantages.std(unbiased=False)
    torch.testing.assert_close(normalized, expected)
    # the update normalizes the storage's advantages (and leaves the returns)
    model = make_model()
    storage = fill(model)
    raw, returns = storage.advantages.clone(), storage.returns.clone()
    assert abs(raw.mean().item()) > 0.01
    PPO(model, ppo_config(num_epochs=1)).update(storage)
    assert storage.advantages.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert storage.advantages.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-5)
    torch.testing.assert_close(storage.returns, returns)
    storage = fill(model)
    raw = storage.advantages.clone()
    PPO(model, ppo_config(num_epochs=1, normalize_advantages=False)).update(storage)
    torch.testing.assert_close(storage.advantages, raw)


def test_ppo_state_dict_round_trip():
    model = make_model()
    ppo = PPO(model, ppo_config(), seed=3)
    ppo.update(fill(model, mean_shift=1.0))
    state = ppo.state_dict()
    other = PPO(copy.deepcopy(model), ppo_config(), seed=99)
    other.load_state_dict(copy.deepcopy(state))
    assert other.learning_rate == ppo.learning_rate != 1e-3
    assert other.optimizer.param_groups[0]["lr"] == ppo.learning_rate
    assert torch.equal(
        torch.randperm(10, generator=other.generator), torch.randperm(10, generator=ppo.generator)
    )
    step = state["optimizer"]["state"][0]["step"]
    assert other.optimizer.state_dict()["state"][0]["step"] == step


# --------------------------------------------------------------------- storage


def test_storage_samples_cover_every_transition_once_per_epoch():
    storage = fill(make_model(), T=4, N=6)
    batches = list(storage.minibatches(3, 2, torch.Generator().manual_seed(0)))
    assert len(batches) == 6
    for batch in batches:
        assert batch.actor_obs.shape == (8, D) and batch.actions.shape == (8, A)
        assert batch.log_probs.shape == batch.returns.shape == (8,)
        assert batch.starts is None and batch.actor_state is None
    for epoch in (batches[:3], batches[3:]):
        seen = torch.cat([b.actions for b in epoch])
        flat = storage.actions.flatten(0, 1)
        assert sorted(map(tuple, seen.tolist())) == sorted(map(tuple, flat.tolist()))
    # rows stay together: a sample's log-prob belongs to its action
    flat_actions, flat_lp = storage.actions.flatten(0, 1), storage.log_probs.flatten()
    for batch in batches:
        for action, log_prob in zip(batch.actions, batch.log_probs, strict=True):
            i = int((flat_actions == action).all(-1).nonzero()[0, 0])
            assert flat_lp[i] == log_prob


#: the Minibatch fields every feed-forward sample carries
SAMPLE_FIELDS = [f.name for f in dataclasses.fields(Minibatch) if f.default is dataclasses.MISSING]


def test_storage_minibatches_are_the_plain_per_field_gather():
    """The packed fast path serves exactly ``field.flatten(0, 1)[ids]`` for every field."""
    for num_actions in (A, 1):  # a single action keeps its (M, 1) shape
        gen = torch.Generator().manual_seed(1)
        storage = RolloutStorage(5, 6, D, D + 2, num_actions)
        for name in SAMPLE_FIELDS:
            field = getattr(storage, name)
            setattr(storage, name, torch.randn(field.shape, generator=gen))
        order = torch.Generator().manual_seed(3)
        batches = list(storage.minibatches(4, 2, order))
        order.manual_seed(3)
        for epoch in range(2):
            ids = torch.randperm(30, generator=order)
            for i in range(4):
                batch, rows = batches[4 * epoch + i], ids[i * 7 : (i + 1) * 7]
                for name in SAMPLE_FIELDS:
                    expected = getattr(storage, name).flatten(0, 1)[rows]
                    assert torch.equal(getattr(batch, name), expected), name


def test_storage_errors():
    storage = RolloutStorage(2, 3, D, D, A)
    row = dict(
        actor_obs=torch.zeros(3, D),
        critic_obs=torch.zeros(3, D),
        actions=torch.zeros(3, A),
        log_probs=torch.zeros(3),
        means=torch.zeros(3, A),
        stds=torch.ones(3, A),
        values=torch.zeros(3),
        rewards=torch.zeros(3),
        dones=torch.zeros(3, dtype=torch.bool),
        starts=torch.zeros(3, dtype=torch.bool),
    )
    storage.add(**row)
    with pytest.raises(RuntimeError, match="1 of 2"):
        storage.compute_returns(torch.zeros(3), 0.99, 0.95)
    storage.add(**row)
    with pytest.raises(RuntimeError, match="full"):
        storage.add(**row)
    storage.compute_returns(torch.zeros(3), 0.99, 0.95)
    gen = torch.Generator()
    with pytest.raises(ValueError, match="7 minibatches but only 6 transitions"):
        next(storage.minibatches(7, 1, gen))
    assert len(list(storage.minibatches(6, 1, gen))) == 6
    storage.clear()
    storage.add(**row)  # room again
    recurrent = RolloutStorage(2, 3, D, D, A, (torch.zeros(1, 3, 4), torch.zeros(1, 3, 4)))
    with pytest.raises(ValueError, match="4 minibatches but only 3 envs"):
        next(recurrent.minibatches(4, 1, gen))
