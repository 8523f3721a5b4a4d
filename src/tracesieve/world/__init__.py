"""The embedded synthetic world: problems, traces with planted roles, and its tokenizer."""
