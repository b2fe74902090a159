"""Upstream providers: how a canonical request is written for one API, and its answers read back.

Each provider is one module (``anthropic``, ``openai``, ``gemini``) implementing ``Codec`` from
``base``; provider-specific special cases live there and nowhere else.
"""
