"""`finetune attention`: attention maps of a trained model as heatmaps.

Fast attention kernels (SDPA, flash) never materialise the attention weights, so we compute
them ourselves, softmax(Q Kᵀ · scale + bias + mask) per head, from each attention module's own
projections applied to the inputs it was called with in one forward pass (capture.py).

- one file per family's Q/K recipe: bert.py (query/key), gpt2.py (fused c_attn), llama.py
  (rotary, grouped key/value heads), t5.py (no scaling, relative position bias; encoder,
  decoder and cross attention);
- maps.py picks the family and applies masks and softmax; Longformer, LED and BigBird return
  their own sparse weights instead (finetune/views/sparse_attention_maps.py);
- heatmaps.py draws one head or a grid of every head of a layer; command.py is the command.
"""
