"""Official checkpoints in pluralfill: one converter module per model family (read safely, checked key by
key, written as config.json + model.safetensors) and the model store of installed models."""
