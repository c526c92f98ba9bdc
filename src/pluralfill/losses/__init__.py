"""Training losses: reconstruction, gradient, perceptual + style (VGG), adversarial."""
