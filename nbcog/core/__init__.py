"""nbcog's sans-IO core: predictions, events, broadcasting, schema, validation, metrics, encoding.

Import rule: this package imports only the standard library. No asyncio, threading, tornado,
ipywidgets, IPython, cog or pydantic: time and scheduling are passed in by the layers above,
so every piece here can be tested with plain function calls (tests/project/test_layering.py
enforces it).
"""
