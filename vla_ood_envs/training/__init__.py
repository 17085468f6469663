"""Training: supervised fine-tuning on demonstrations and RL fine-tuning (PPO, GRPO, trajectory DPO)."""
