"""Rejoinder: the OpenAI Responses and Conversations APIs over any chat-completions model."""

__version__ = "0.1.0"
