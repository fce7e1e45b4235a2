"""``make bench-gateway``: the AI gateway against its upstream called directly and against
LiteLLM's proxy (``python -m bench.gateway``; see its ``__main__``)."""
