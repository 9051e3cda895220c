"""Execution: loads the predictor, runs setup/predict/train off the serving loop, cancels.

Import rule: nbcog.core, the standard library and requests. Only the ``cog_adapter`` package and
``scope.py`` import cog/coglet. Never tornado, ipywidgets or IPython.
"""
