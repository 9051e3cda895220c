"""Loading a Cog predictor and describing its handlers: schema, coercions, call style.

coglet never inspects types itself: ``cog build`` parses the predictor's source with cog's Go
generator (``pkg/schema``) into ``.cog/openapi_schema.json``, and coglet validates against
that. nbcog has no build step, so this package derives the same ``Input``/``Output``
components from the live objects (type hints, ``Input()`` metadata, decorators), following the
Go rules (spec §5), and prepares call kwargs as coglet's ``input.rs`` does (spec §7).

Predictors defined in ``__main__`` (notebook cells) are described from the objects
themselves: nothing here re-imports a module by name. This is the only runner package, with
``scope.py``, that imports cog.

Modules: ``loading`` (references, classes), ``predictor`` and ``handler`` (the descriptions),
``input_schema``/``output_schema``/``hints`` (types to JSON schema), ``source_facts`` (what
only the source tells), ``coercion`` (JSON values to call kwargs).
"""

from cog import CancelationException

from nbcog.runner.cog_adapter.handler import STREAMING_RETURN_ERROR, HandlerInfo, describe_handler
from nbcog.runner.cog_adapter.loading import load_target
from nbcog.runner.cog_adapter.predictor import PredictorInfo, describe_predictor

__all__ = [
    "STREAMING_RETURN_ERROR",
    "CancelationException",
    "HandlerInfo",
    "PredictorInfo",
    "describe_handler",
    "describe_predictor",
    "load_target",
]
