"""IR passes, one module each; the order lives in :mod:`pseudosnn.compiler.pipeline`."""
