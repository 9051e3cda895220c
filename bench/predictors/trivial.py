"""Returns its input at once: the cost of one sync prediction is all server."""

from cog import BasePredictor


class Predictor(BasePredictor):
    def run(self, text: str = "hi") -> str:
        return text
