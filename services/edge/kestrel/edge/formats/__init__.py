"""Wire formats: each API's JSON read into the canonical model and written back out of it.

One module per API family (``anthropic``, and the OpenAI and Gemini ones beside it). A module here
knows field names, nesting and validation messages, and nothing about sockets, accounts or which
side of the gateway it runs on: providers (``providers/``) use it to speak to an upstream, dialects
(``dialects/``) use it to answer a client. Keeping the JSON mapping in one place per family means a
field is spelled once, whichever direction the bytes flow.
"""
