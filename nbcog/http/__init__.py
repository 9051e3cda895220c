"""Tornado front end: Cog's predictions API over HTTP, SSE included.

Import rule: nbcog.core, nbcog.service, tornado and pydantic. Never ipywidgets or IPython.
Handlers translate HTTP to service calls and ``NbcogError``s back to responses, nothing more.
"""
