"""A demo predictor written with the real cog SDK: streams a greeting token by token.

Serve it with ``python -m nbcog serve examples/predict.py:Predictor``; it moves unchanged
into ``cog build``.
"""

import time

from cog import BaseRunner, ConcatenateIterator, Input, current_scope, streaming


class Predictor(BaseRunner):
    def setup(self) -> None:
        print("demo predictor ready")

    @streaming
    def run(
        self,
        name: str = Input(default="world", description="who to greet"),
        delay: float = Input(default=0.05, ge=0, le=1, description="seconds between tokens"),
    ) -> ConcatenateIterator[str]:
        words = f"Hello, {name}! This reply is streamed one token at a time.".split(" ")
        for count, word in enumerate(words, start=1):
            print(f"token {count}/{len(words)}")
            current_scope().record_metric("tokens", 1, mode="incr")
            yield word + " "
            time.sleep(delay)
