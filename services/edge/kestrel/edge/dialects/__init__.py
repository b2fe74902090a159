"""Client dialects: how requests are read and errors are written for each API family.

``anthropic`` is the Messages API Claude Code speaks. The OpenAI dialect joins it when
translation lands.
"""
