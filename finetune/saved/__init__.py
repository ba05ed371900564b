"""A saved model directory: writing it, checking and loading it back, its model card."""
