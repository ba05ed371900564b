"""finetune: fine-tune pretrained Transformers from one YAML file."""

__version__ = "0.1.0"
