"""Fine-tuning stages: instruction and preference data (data.py), LoRA SFT (sft.py), DPO (dpo.py),
evaluation before and after each (evaluate.py). Build time only: torch, transformers, peft."""
