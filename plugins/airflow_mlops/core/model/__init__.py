"""Model engineering: what a model takes as input and how it is trained, packaged and loaded."""
