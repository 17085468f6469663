"""Training of learnable policies: supervised fine-tuning on demonstrations (`sft`, with its in-memory demo data
in `data`) and RL fine-tuning (`ppo`, `grpo`, `dpo`, with the shared pieces beside them). Imports torch; the env
plugin does not need this package."""
