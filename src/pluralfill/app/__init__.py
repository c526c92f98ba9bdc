"""The local web app (`pluralfill serve`)."""
