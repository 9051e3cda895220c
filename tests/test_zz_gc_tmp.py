import gc
def test_gc():
    """collect"""
    gc.collect()
