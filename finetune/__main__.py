"""`python -m finetune`: the entry point torchrun and `accelerate launch -m` start."""

from finetune.cli import main

if __name__ == "__main__":
    main()
