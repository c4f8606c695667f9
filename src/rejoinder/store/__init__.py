"""Durable state: responses, their items, conversations, and background-stream events."""
