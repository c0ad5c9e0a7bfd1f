"""Small runnable examples of the optimizer."""
