"""One readable file per network of a paper."""
