"""Loading models and tokenizers, LoRA, attention kernels, merging adapters."""
