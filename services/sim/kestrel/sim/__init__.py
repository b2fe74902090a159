"""``kestrel sim``: a stand-in for the Anthropic Messages, OpenAI chat completions and Gemini
generateContent APIs, for tests, benchmarks and the demo.

How the parts fit:

* ``config``: ``SimConfig`` (keys and limits, latency, cache floor, models), from YAML or flags.
* ``app``: ``create_app(config)``, the ASGI app; it builds the runtime state (``_state``) and
  mounts the Anthropic routes (``_api``), OpenAI's (``_openai``), Gemini's (``_gemini``) and the
  control routes (``_control``).
* Every generation request takes one path (``_exchange``) whatever its API; the API is a
  ``Dialect`` that parses its body into the neutral ``MessagesRequest`` and renders errors,
  headers and answers in its own wire form. Along that path the request is cut into cache
  segments once (``_request`` for Anthropic; token rule in ``_tokens``), split into cached and
  uncached tokens (``_cache``), admitted against the key's fixed window (``_limits``; one window
  per key across all APIs), answered from a script, markers or the default echo (``_answers``,
  one builder for all APIs, in Anthropic's block form), rendered as JSON or stream frames
  (``_render`` for Anthropic, ``_openai``, ``_gemini``) and sent with latency and faults
  (``_responses``, ``_faults``). ``_requestlog`` keeps what arrived, byte for byte.
* ``cli``: ``main(argv)`` serves it with uvicorn; ``testing``: ``running_sim()`` serves it on a
  background thread with a small client for the control API.
"""

from kestrel.sim.app import create_app
from kestrel.sim.config import ConfigError, KeyLimits, ModelInfo, SimConfig, load_config

__all__ = ["ConfigError", "KeyLimits", "ModelInfo", "SimConfig", "create_app", "load_config"]
