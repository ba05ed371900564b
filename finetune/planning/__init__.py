"""`finetune plan`: what a run will need (parameters, memory per process, tokens, time) before it
starts, from the model's config alone (the model is built on the meta device: no weights read).
`precision.py` says how many bytes each weight, gradient and optimizer state takes,
`activations.py` what a micro-batch keeps for backward, `estimate.py` adds them up,
`memory.py` compares the peak with what this machine has, `command.py` prints it."""
