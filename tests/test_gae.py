"""GAE (``sim2real.policies.gae.compute_gae``) against hand-computed and analytic values."""

import numpy as np
import pytest
import torch

from sim2real.policies.gae import compute_gae


def test_hand_computed_rollout_with_a_done_in_the_middle():
    gamma, lam = 0.9, 0.5  # gamma * lam = 0.45
    # T = 3 steps (rows) of N = 2 envs (columns)
    rewards = torch.tensor([[1.0, 0.0], [2.0, 1.0], [3.0, -1.0]])
    values = torch.tensor([[0.5, 1.0], [1.0, 0.0], [1.5, 2.0]])
    dones = torch.tensor([[False, False], [True, False], [False, False]])
    last_values = torch.tensor([2.0, -1.0])
    # env 0 (its episode ends at t = 1; a new one starts at t = 2):
    #   t=2: delta = 3 + 0.9 * 2.0 - 1.5          = 3.3     A = 3.3
    #   t=1: done, no bootstrap: delta = 2 - 1.0   = 1.0     A = 1.0 (t=2 does not leak in)
    #   t=0: delta = 1 + 0.9 * 1.0 - 0.5          = 1.4     A = 1.4 + 0.45 * 1.0  = 1.85
    #   returns = A + V = [2.35, 2.0, 4.8]
    # env 1 (no done):
    #   t=2: delta = -1 + 0.9 * (-1.0) - 2.0      = -3.9    A = -3.9
    #   t=1: delta = 1 + 0.9 * 2.0 - 0.0          = 2.8     A = 2.8 + 0.45 * -3.9 = 1.045
    #   t=0: delta = 0 + 0.9 * 0.0 - 1.0          = -1.0    A = -1 + 0.45 * 1.045 = -0.52975
    #   returns = A + V = [0.47025, 1.045, -1.9]
    advantages, returns = compute_gae(rewards, values, dones, last_values, gamma, lam)
    expected_adv = torch.tensor([[1.85, -0.52975], [1.0, 1.045], [3.3, -3.9]])
    expected_ret = torch.tensor([[2.35, 0.47025], [2.0, 1.045], [4.8, -1.9]])
    torch.testing.assert_close(advantages, expected_adv, rtol=0, atol=1e-6)
    torch.testing.assert_close(returns, expected_ret, rtol=0, atol=1e-6)
    assert advantages.shape == returns.shape == (3, 2)
    assert advantages.dtype == returns.dtype == torch.float32


def reference_gae(rewards, values, dones, last_values, gamma, lam):
    """Independent form: A_t = sum_l (gamma lam)^l delta_{t+l}, summed until the episode ends."""
    rewards, values, dones = (np.asarray(x, dtype=np.float64) for x in (rewards, values, dones))
    T, N = rewards.shape
    next_values = np.concatenate([values[1:], np.asarray(last_values, np.float64)[None]])
    deltas = rewards + gamma * next_values * (1 - dones) - values
    advantages = np.zeros((T, N))
    for n in range(N):
        for t in range(T):
            for k in range(t, T):
                advantages[t, n] += (gamma * lam) ** (k - t) * deltas[k, n]
                if dones[k, n]:
                    break
    return advantages


@pytest.mark.parametrize("lam", [0.0, 0.7, 1.0])
def test_random_rollouts_match_the_explicit_sum(lam):
    gen = torch.Generator().manual_seed(0)
    T, N, gamma = 12, 5, 0.95
    rewards = torch.randn(T, N, generator=gen)
    values = torch.randn(T, N, generator=gen)
    dones = torch.rand(T, N, generator=gen) < 0.2
    last_values = torch.randn(N, generator=gen)
    advantages, returns = compute_gae(rewards, values, dones, last_values, gamma, lam)
    expected = reference_gae(rewards, values, dones, last_values, gamma, lam)
    np.testing.assert_allclose(advantages.numpy(), expected, atol=1e-5)
    torch.testing.assert_close(returns, advantages + values)


@pytest.mark.parametrize("lam", [0.0, 0.95, 1.0])
def test_exact_constant_value_gives_zero_advantages(lam):
    # constant reward r forever: V = r / (1 - gamma) is exact, every TD error is 0
    r, gamma, T, N = 0.5, 0.75, 20, 3  # V = 2.0, exact in binary floating point
    value = r / (1 - gamma)
    rewards = torch.full((T, N), r)
    values = torch.full((T, N), value)
    dones = torch.zeros(T, N, dtype=torch.bool)
    advantages, returns = compute_gae(rewards, values, dones, torch.full((N,), value), gamma, lam)
    torch.testing.assert_close(advantages, torch.zeros(T, N), rtol=0, atol=1e-6)
    torch.testing.assert_close(returns, values, rtol=0, atol=1e-6)


def test_lambda_one_and_zero_values_give_discounted_returns():
    gamma, T, N = 0.9, 6, 2
    rewards = torch.arange(T * N, dtype=torch.float32).reshape(T, N) / 10 - 0.3
    zeros = torch.zeros(T, N)
    dones = torch.zeros(T, N, dtype=torch.bool)
    advantages, returns = compute_gae(rewards, zeros, dones, torch.zeros(N), gamma, lam=1.0)
    expected = torch.zeros(T, N)
    for t in range(T):
        for k in range(t, T):
            expected[t] += gamma ** (k - t) * rewards[k]
    torch.testing.assert_close(advantages, expected)
    torch.testing.assert_close(returns, expected)
    # e.g. the last step is its own reward, the one before adds gamma times it
    torch.testing.assert_close(returns[-2], rewards[-2] + gamma * rewards[-1])


def test_lambda_zero_is_the_one_step_td_error():
    gen = torch.Generator().manual_seed(1)
    rewards, values = torch.randn(4, 3, generator=gen), torch.randn(4, 3, generator=gen)
    dones = torch.tensor([[0, 0, 1], [1, 0, 0], [0, 0, 0], [0, 1, 0]], dtype=torch.bool)
    last = torch.randn(3, generator=gen)
    advantages, _ = compute_gae(rewards, values, dones, last, 0.9, lam=0.0)
    next_values = torch.cat([values[1:], last[None]])
    torch.testing.assert_close(advantages, rewards + 0.9 * next_values * ~dones - values)


def test_dones_cut_the_bootstrap():
    gen = torch.Generator().manual_seed(2)
    T, N = 5, 2
    rewards, values = torch.randn(T, N, generator=gen), torch.randn(T, N, generator=gen)
    dones = torch.zeros(T, N, dtype=torch.bool)
    dones[2, 0] = True  # env 0 ends at t = 2
    dones[-1, 1] = True  # env 1 ends at the last step
    adv, _ = compute_gae(rewards, values, dones, torch.zeros(N), 0.99, 0.95)
    # the value after the last step does not matter to an env whose last step is done ...
    other, _ = compute_gae(rewards, values, dones, torch.tensor([0.0, 1e3]), 0.99, 0.95)
    torch.testing.assert_close(other[:, 1], adv[:, 1])
    # ... but it does to an env that runs on
    other, _ = compute_gae(rewards, values, dones, torch.tensor([1e3, 0.0]), 0.99, 0.95)
    assert (other[3:, 0] - adv[3:, 0]).abs().min() > 1.0
    torch.testing.assert_close(other[:3, 0], adv[:3, 0])
    # what happens after a done never reaches the steps up to it
    later_r, later_v = rewards.clone(), values.clone()
    later_r[3:, 0] += 100.0
    later_v[3:, 0] -= 50.0
    moved, _ = compute_gae(later_r, later_v, dones, torch.zeros(N), 0.99, 0.95)
    torch.testing.assert_close(moved[:3], adv[:3])
    assert (moved[3:, 0] - adv[3:, 0]).abs().min() > 1.0
    # and without the done it would: the cut is what keeps them apart
    no_done = dones.clone()
    no_done[2, 0] = False
    a, _ = compute_gae(rewards, values, no_done, torch.zeros(N), 0.99, 0.95)
    b, _ = compute_gae(later_r, later_v, no_done, torch.zeros(N), 0.99, 0.95)
    assert (a[:3, 0] - b[:3, 0]).abs().min() > 1.0


def test_inputs_are_not_modified():
    rewards, values = torch.ones(3, 2), torch.full((3, 2), 0.5)
    dones = torch.tensor([[0, 1], [0, 0], [1, 0]], dtype=torch.bool)
    last = torch.tensor([1.0, 2.0])
    copies = [x.clone() for x in (rewards, values, dones, last)]
    compute_gae(rewards, values, dones, last, 0.9, 0.9)
    for x, c in zip((rewards, values, dones, last), copies, strict=True):
        torch.testing.assert_close(x, c)


@pytest.mark.parametrize(
    ("rewards", "values", "dones", "last"),
    [
        ((3, 2), (3, 3), (3, 2), (2,)),
        ((3, 2), (3, 2), (2, 2), (2,)),
        ((3, 2), (2, 3), (3, 2), (2,)),
        ((3,), (3,), (3,), (1,)),
        ((3, 2), (3, 2), (3, 2), (3,)),
        ((3, 2), (3, 2), (3, 2), (1,)),
        ((3, 2), (3, 2), (3, 2), (2, 1)),
    ],
)
def test_shape_mismatch_is_a_value_error(rewards, values, dones, last):
    with pytest.raises(ValueError, match=r"\(T, N\)|last_values"):
        compute_gae(
            torch.zeros(rewards),
            torch.zeros(values),
            torch.zeros(dones, dtype=torch.bool),
            torch.zeros(last),
            0.99,
            0.95,
        )
