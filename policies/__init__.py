"""Actor-critic models, PPO, rollout storage and distributed training."""
