"""mlp_lab: the dashboard's logic, importable without a browser or the canvas component.

Only ``session`` and ``links`` import Streamlit (the glue); everything else is plain
Python that the tests call directly. See docs/ARCHITECTURE.md for the whole map.
"""
