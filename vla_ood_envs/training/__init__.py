"""Training of learnable policies: supervised fine-tuning on demonstrations (`sft`), the in-memory demo data
(`data`). Imports torch; the env plugin does not need this package."""
