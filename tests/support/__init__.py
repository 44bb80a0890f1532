"""Test helpers that build real things shared by several test files (a scripted OpenAI server)."""
