"""Inference backends: anything that turns a chat-completions request into a stream of chunks."""
