"""Returns a reversed copy of its input: each finished prediction holds input and output."""

from cog import BasePredictor


class Predictor(BasePredictor):
    def run(self, text: str) -> str:
        return text[::-1]  # a new string of the same size, as a real model's output is
