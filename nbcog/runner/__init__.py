"""Execution: loads the predictor, runs setup/predict/train off the serving loop, cancels.

Import rule: nbcog.core, the standard library and requests. Only ``cog_adapter.py`` and
``scope.py`` import cog/coglet. Never tornado, ipywidgets or IPython.
"""
