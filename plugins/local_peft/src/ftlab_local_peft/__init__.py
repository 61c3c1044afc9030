"""ftlab backend ``local_peft``: transformers + peft LoRA tuning and prediction."""
