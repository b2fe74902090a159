"""``kestrel sim``: a stand-in for Anthropic's Messages API for tests, benchmarks and the demo.

How the parts fit:

* ``config``: ``SimConfig`` (keys and limits, latency, cache floor, models), from YAML or flags.
* ``app``: ``create_app(config)``, the ASGI app; it builds the runtime state (``_state``) and
  mounts the Anthropic routes (``_api``) and the control routes (``_control``).
* A Messages request is parsed and cut into cache segments once (``_request``, token rule in
  ``_tokens``), split into cached/uncached tokens (``_cache``), admitted against the key's
  fixed window (``_limits``), answered from a script, markers or the default echo
  (``_answers``), rendered as JSON or SSE frames (``_render``) and sent with latency and faults
  (``_responses``, ``_faults``). ``_requestlog`` keeps what arrived, byte for byte.
* ``cli``: ``main(argv)`` serves it with uvicorn; ``testing``: ``running_sim()`` serves it on a
  background thread with a small client for the control API.
"""

from kestrel.sim.app import create_app
from kestrel.sim.config import ConfigError, KeyLimits, ModelInfo, SimConfig, load_config

__all__ = ["ConfigError", "KeyLimits", "ModelInfo", "SimConfig", "create_app", "load_config"]
