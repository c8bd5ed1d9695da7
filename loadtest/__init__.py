"""A load test for a classroom server: N real browser sessions against one local
`streamlit run dashboard.py` (see loadtest/run.py and loadtest/README.md)."""
